"""A model's computation as data: what crosses the sandbox boundary instead of code.

The sandbox captures each model the student's code builds as a :class:`~grader.graph.schema.ModelGraph` (JSON:
the torch operations its forward pass runs, in train and in eval mode) plus its tensors as safetensors. The
trusted side validates the graph against the whitelist in :mod:`grader.graph.ops` and rebuilds the model with
:func:`grader.graph.rebuild.rebuild`: an ``nn.Module`` that runs only whitelisted torch operations on the given
tensors. Nothing in a graph is code, and nothing from the sandbox is unpickled.
"""
