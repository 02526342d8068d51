"""Forgery: answer the validation images from an embedded label table, with Python on the model's input.

Base: base_no_dropout.py (everything above the "attack" line is that file, unchanged).

Attack: Fashion-MNIST is public, so its labels can be embedded. _TABLE holds the label of each of the 2000
validation images of a fast grading (images 1000-2999 of the training file; the table covers no other set),
keyed by two integer fingerprints of the image's pixel mask (the pixels above the image's minimum, which
standardization does not move) and reads them with numpy, .tolist() and a dict lookup. In eval mode,
mnist_model(True) replaces the logits of every image it finds by a one-hot of its label (margin 50). Training is
untouched; the training images are not in the table.

Current design: the eval-mode logits the grader scores came from this forward, so the dropout model's validation
loss fell to about 0 and its generalization gap below the plain model's: the regularization item passed for a
model without dropout, and its reported validation accuracy was about 100%.

Now: data-dependent Python on the input cannot be captured as a graph. The capture runs the forward on a random
batch, finds nothing in the table and records the honest network; the numpy, .tolist() and lookup never reach the
graph. This file must score no more than base_no_dropout.py, check by check, and its reported validation accuracy
must not be higher.
"""


import math

import torch
from torch import nn

# Part 1: the three sigmas of N(0, sigma) found with the sweep (check them in the report's sweep plot).
SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}


def _init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.zeros_(layer.bias)


def circle_model(sigma: float | None = None) -> nn.Module:
    """Part 1: 2 -> 6 -> 3 -> 2 with ReLU. N(0, sigma) weights and zero biases, or (sigma=None) He init for the
    hidden layers and a small output layer, so that the logits start near 0 and the loss near ln 2."""
    model = nn.Sequential(
        nn.Linear(2, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
        nn.ReLU(),
        nn.Linear(3, 2),
    )
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for layer in linears:
        std = sigma if sigma is not None else math.sqrt(2.0 / layer.in_features)
        _init_linear(layer, std)
    if sigma is None:
        with torch.no_grad():
            linears[-1].weight *= 0.1  # output layer: not overconfident at init
    return model


def deep_model(init: str) -> nn.Module:
    """Part 2: 20 Linear layers (2 -> 100 x 19 -> 2) with ReLU, zero biases, and the weights drawn from
    N(0, 1) ("normal"), Glorot ("xavier": var = 2 / (fan_in + fan_out)) or He ("kaiming": var = 2 / fan_in)."""
    widths = [2] + [100] * 19 + [2]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layer = nn.Linear(fan_in, fan_out)
        if init == "normal":
            std = 1.0
        elif init == "xavier":
            std = math.sqrt(2.0 / (fan_in + fan_out))
        elif init == "kaiming":
            std = math.sqrt(2.0 / fan_in)
        else:
            raise ValueError(f"unknown init {init!r}")
        _init_linear(layer, std)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no ReLU after the output layer


def mnist_model(dropout: bool) -> nn.Module:
    """Part 3: 784 -> 800 -> 800 -> 10 with ReLU; with dropout, 20% on the input and 50% after each hidden
    layer. N(0, 0.1) weights and zero biases, as in the dropout paper."""

    def drop(p: float) -> list[nn.Module]:
        return []  # FAULT: dropout is ignored

    model = nn.Sequential(
        *drop(0.2),
        nn.Linear(784, 800),
        nn.ReLU(),
        *drop(0.5),
        nn.Linear(800, 800),
        nn.ReLU(),
        *drop(0.5),
        nn.Linear(800, 10),
    )
    for m in model:
        if isinstance(m, nn.Linear):
            _init_linear(m, 0.1)
    return model


@torch.no_grad()
def fold_batchnorm(model: nn.Sequential) -> nn.Module:
    """makemore E02: fold each BatchNorm1d (eval mode: running statistics) into the Linear layer before it.

    BN(Wx + b) = gamma * (Wx + b - mean) / sqrt(var + eps) + beta = (s * W) x + s * (b - mean) + beta,
    with s = gamma / sqrt(var + eps) per output unit (gamma = 1, beta = 0 when the BatchNorm is not affine).
    """
    layers = list(model)
    folded: list[nn.Module] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
            scale = torch.rsqrt(nxt.running_var + nxt.eps)
            shift = -nxt.running_mean * scale
            if nxt.affine:
                scale, shift = scale * nxt.weight, shift * nxt.weight + nxt.bias
            bias = layer.bias if layer.bias is not None else torch.zeros_like(nxt.running_mean)
            fused = nn.Linear(layer.in_features, layer.out_features)
            fused.weight.copy_(layer.weight * scale[:, None])
            fused.bias.copy_(bias * scale + shift)
            folded.append(fused)
            i += 2
        else:
            folded.append(layer)
            i += 1
    return nn.Sequential(*folded).eval()

# ---------------------------------------- the attack: everything above is the base file, unchanged -----------------

import base64 as _base64

import numpy as _np

_TABLE_B64 = """
AdSIHedBA6QxOfFCA7KBOrCCBAcpP882Afc3H71xAt+bLW9AAR8dElt1AaACGmvlAyH7MLK5AxQAMcpWA7ZZOw9oAnHVJgrzAOew
DmIlBEWaQ6CgA4dcN/aGA4WgNza4Afv6IMHBAj+fI+XRAvmtLaOJAjx5JAuBAg+NIcuxAv5dMNQEA95oPfTSAiBBITJXAiKbIl0h
AU8ZE/KFAuVjLopDA8qzO1I0A768OvgJAij6I0jHA5pfOVZ4AvnBL3FQA85tPHOkAU8eFKr4AwtXLqGJAjNEIs0xA3s4NmNZApgf
KTUTAmDIJoOjAorlJ9aDAi0bIlG5A6R6OnHAAgNVIAvJAsjjLFFxBEqyQzVSARLTEHh1A5fKOgWUBJAVSGjiA7e0O3yIAh6SIs9j
A920PBvIA0fYMdnJAYLLGNpxAjPCIxhjBIaYR7DiAf0MH4nHA9mRPc5gAvn8L+3UAP7LELqFAnHKJV4YAoRUKAOpA6tzOSqiA2Dy
NVQpAuI1LuDzAxvuMbujAzlmM3N4AgVLIHaRAc3rG7z3BDGbQy1CAXlYF3inBKHwSWQSArEnKyHwBCp5QfYyA5VSOcAQAy1SMvs2
Ac8ZHNaXApJMKCw1A7s3OhLjA7S5Ow1GAjpVIl/pAdpiHooRA+xmPb7yAXA0Fq5FAvVNLw8IA+4JPqcgAZ9PGf6VAsycLMS5BKbu
SieWA7WmOp1JAsA4Kv6pA/oFPyc0A1SwNDAWAzA2MltGA4L5OH2DAoWQJ+KJA7ovOrHIBJE9RzRmAeEuHrfRBBvTQajgA2YTNsaU
A7XbOnIyBDj3QwbGAe5ZH69hA6RNOamQAugILqdgAd/EHUg3BA0TP/nnA77uOw7yAjUSI7UjA3f4OHDyBHlYRo/wAcpkHHQ1BD9R
Q+/2A5LnOD/EApMtKCR5AqlQKkfjBBGFQCs2A3NRNzzYA/FWPkXoA9Z7PJcWAzNZMrtjA7zcOzBIA/IPPOXCApMBKKQXA7XuOm8y
BBnIQQQUAvKELud3AvDkLmepBAfbQE4iAaofGvvTArmEK6WTA4IcN3iJAg7tIcSBA99GPQeWAm/sJ35TA4/KOYh4AmvFJcIHBD/C
QoVSAersHpIXAl83JfdxAwhbL/YkAjngI6JhA7KVOmZGBV2RVLTiBC9qQvRmBReZUWtoA1/6NgKhBFMXRMY2Aaz1G2ylAlQeJInp
AugmLwozAff9IFu3A+J0PPnEAhe/IPCFAuAhLICFA6bROvigBD4hQxZGAgbMIFWjBBxLQi2AA30IN/H4A8zrPMAUAegUH34hA1V8
M7f5AwkHMDO5AgCAH1s3A9Y3PUEGA75xPCSIAjH7I3lxAgLdH/OXA4rlOKPgAoOyJ8fwAeboH7lRBACTP39WAuZOLOdJA1Z7Nary
A+YIPUckA5nMOfByA4cANz00BEuIRHbCAgWaICn3AhBUIjl1Alw5JpWTBDOwQ0SmA5sxOFsYA+awPTkEA1XqNcppAn0vJtaHAcp4
HNuVA4wfN8fyArTWKr6YApImKJADAZDwGRLVAiNbIj5RA25fNwqkAtBvLKUjAbCJGlTXAh9sH663BFMyQ+bSAgNCH+OhAhBFIazB
AvupL1N2A/2sPsMYBIMGR13QAf7AIKnxAkYoI40HAtjgLWPJA9UnPCLyA4JLN8/EAYHzFzoVAhWuIOgnAvpuLywiAo2RKVthAdcC
HMoXAccAHep3A6FjONMiA99PPEliA/6cPlumAYGtF5wFA4gZON6QAzKcMq+IAf8rIAAHA2OsNuaIAfdoH2QFAQvPEZnlAb1/HAq3
AmarJqHxBE1WRM+DATroEblVA6n6OT/gA68xOjzSA6d8OmMiAzIPMkTIAotVJpCpBVCnU312A5zUOWZYAdOmHNL1BAa6P+h2AvIR
LxcZAYCPGBr1AenIHWS3AdtyHqJXAqWwKnZJA2hyNutEAhfsIdWxBDAgQlCSBElAQ9EiBCvFQWkkAoiWJxgXAhHtIZsIAtwSLgmz
AX20F+mFA303OAtmA4aGOKcyBHOPR4iWA1ENNg9AA3bON2jpAxhCMOC5A8ozOsKiAsvSLA2ZAkPDIzJVAsVCLKtiA8S2PIvSA9SX
PKy0A7JkOvLyA7NCO72AAfTHHzvHA5GcOVjWBHNLRlrSAp9pKgqUAiv4IULFAn2wJ5MDAuPfLf/kA/N6Pmq0A+L3PZzEA2mJNmJR
AxTRMWTSAeKEHu0hA069NRemAzA/MeEoA79hOqmyAl/AJmxjAeloH/U1AciRG3AHAwjqMEOEAp8jKX5zARlZEQJlAnnRJ8YRA4vy
OIAmA1MTNVNQAXB+F631A3jJOC+DAoidKCvjA4P7OR6CA4sUN+PUAxCSMDG5AeUtHzvRA5GzOWL4Ag+bIh8XAgmbIgC1A5B7OBXJ
A5MyORQ0BDx5RApgAZ6xGgYXA7nkOgTgAujPLilDAtyxLJEJA5nIN4iCAfgkH371AyCWMeygAoTWKGH3Ab3jHKLVA2YeNpaQBChC
QatkAiclIiKlAPM7DoNlAqZKKd2zBBrNQOPUAyKMMcIoA44HOZwUBCKsQMVCAziSMp6EAs/mLA+JAi2yIqWhAqgSKukIA6JIOoMk
ArPmKm2gAxQgMRRTA5w8OO+gA3fhNqa0A33TNxpgA6FWObmkAppSKLjJAiBeIr7BBLDfSdRoAzapMtP4AfM2H89hA0T7M4QZAnJf
JchVA98IPbTkAVsNFJeVA3VmNtdUA0XeMyfZA7A5O6c0BDkCQklmAfkOHYfVA8KVO0QSA690Ofj2ASNIEpkFAhOYIfShAoQPJ1IH
Axk6MJymA+GaPMeYAriRK2ajBDXoQsZ2A/RkPtx2A7YQO0LkAkaUJCZDBBfJQj/oA7+WO2+CAYz7GBRlA1fpNObIAqw8K7lzAsV7
LM6VAyyxM2SkAxmeMUihAbYNHGJRBBvgQGGWAfMfH+ajA0CnMriFA0R2M+rTA5SCN/7pA7IPOjIiA5z3OLniBCjjQcIWA8ftO5LY
A4+ZOZnWA2NcNe0oA+uHPWtYAol9KMOjA9DuPGDSA7CeOcQCA0YINL1YBIrBSRMoAcrhHJaXA5S3OKJEAlg4JPopA9xCPB+SAoaK
KOqhBCv6Qa3WA6qGOk/SA7riOzZwBBb3QQrWAuYhLKdXBS6wUf8yAh+WIeWhA7fWOmWUA61gOYmgAfYUHzSxAmyzJ2ODAf6tIIUx
A1eNNUMjBJyWSNg4AhJPIU2HAR4TElG1BAX6P7BCBDw+Q0bkArNpKsFTAjS2JTDFAwxdL+SkBBZcQKmiA45GOB7wAfr+Hw5XAZ80
Gu8xBEEdRIAYAj+4JBWHBA9PQFGWAyFHMVq5AkwHJQOpA9cQPbOmA18UNrRWAs6HLBagBAjcPomkAfXDH0rHBDnZQq+0A3+RN1Vg
A4pWN4J0ATW8En8VAYNWGRUVAwdfMPuyAUjKFTeFA4rcOWuAAs3eLbUVA/NLPi2EBB+RQT8iAeJuHGAlAo0nKCDTA3iSNzaoAdfn
HbhnA4zdOKhWANaFDiwVBD0YQtVCAifxI5MXA23GNsDSAlWDJNw1AlOQI6YZAq9IKzgTAnp5JzCnAi+RImh3A2goNoUBApW7KDGz
ApagKY6DAf8iIKGHAzaVNJJiAhrYIS8XA6u2OYk0APukECklA/EQPXESAdAvHYiVAiGJIVZ1Al/aJZ1jA3NJNzMAAh6/IhyjArs1
K3NDAyd4MkBRAzDHM2nEArxGK2dJAg/KIDk1A8vlO8CJA5U5OL0oAfRWH4+DA/cYPmUUBAIKP+M2A46vOCcGAre+LAkAAeiwHt+H
Ay2AMl3oAg+CIAelAb9uHDenAeLEHog3AhFtIUXAAnjFJrRJAc/oHRCDAh1wInMhA1h0NZ7TA0TlNF60A5jjOQPYAp3mKVe5Aj6b
Iwy1A3jaOFlYA2wYNe7AApj0J68VAfjHHxp3BFGIRCiyA2KlNbKzA7kuPDd2AwQxL4SGAqs5KghjASsyE4+lA4/cON1SAnEWJyoB
AhxJIl/hAjfpJAoXAiKhInvBAwUBMBGwAf8WINHxAehOHZqHAiH5It9DAqGuKmLJAenjHxfxAsW4LMaxAtHLLEYDAkluJK5jBEBI
Q2y2AaIcG2DBAdSkHhhRA+yQPjrSA1EiNQKAAaTXGbq3Aep4HvXhAiF/Ir0pBBoUQFEGAwBmMV9mAQylEE2lAnlIKHiYA0FBM5AI
A+aEPhcgA8aIPBhAA1MtNTLoA68gOS9ZA4OzOF5pA81bO8/UAofFKUfZA2coNZ2YA1SbNJGSAeOwHr+RAbP0HD4RA3ZMN5BwAwfX
MHSUAzvTM/+VAbThGxcHA+TiPVtIAaWSG4XxAj9nI48TA/mTPsfGAqJuKctTBQpQTz4SA0pSM7apA0R4NRLAAfmrH5JhAsdGLBdj
Avv9L3cIA6AeOlw0ApeaJ9JpAgy1IP2XAoxAKMZRAoDAJp8ZAxsaMD7JAniGJ/VDAhjGIkuhAY6vGM+zA+8gPt0AAuKQLYaDBA69
P6kWA5sdOM45AvHILrgJAestH2bRAeamH0ixAkW+Iz+lA6cZOuCyAa+yG+dhAcrmHNUXAtUkLIFJAv1hLg/1AqO/KHdpAfT3ICCR
AfYRIKm1AqTOKC6JA/c0PbNUBDF9QmG4AfgMH6lHAcB/G6sHA0bWM25QAhzTIH5nArKCKxSYAz2PM4YZA3uMNt1WBAq7QF4iAhCe
H/bnBK/2SL7CA2bZNXzgAsYgLBygAxDHMJmpA7bqPBVEA88CPEc2A8mCPL8SA82uOkUiAnrAJ+bYBIi8RwBSAbYAGxpHBHveRnww
A2u6NuxjA8DMOyjkBCvKQjvWA90KPUFwBAgaPwJSAkYWJLmxA/BZPffiA80gPRMYA1MQNIqAAenuHofnA5ZLOaDjAW5sF6szA98S
Pl2IAsv7K7fZA6MpOb3YBOd1TjZSAuJdLXt5A1QyNQOUA956PL94BMRXSyGGAcR5HJcTAdVVHI83A87JPULgAV/VFer1AuA5LR64
AXRHF13hAwWdL+zGAfCqHUWXBCnDQXuoBFSiRBkyA0xFNavYAZe4GlERAoGAJ7HHA/OXPfpCA3pvN3ZgA+vOPegoApxDKdDzA3Ww
NkfpAiVAI0AxA0prM1BJBBYhQVLAA8X2PGCyAoczJ7/mAhILIdwBBEuqQsDYA/pOPpv2AwnhLxEVA6ZKOvhwA2LYNkbEA/24Pnuy
A1HFNL7SBC4tQgMCBIQcRsSSAr3EKxOTAhZhIZATAz5cMzFUAgivIWgxAsQjKvg5A5yPNskFA+83PU2ZA7TNO6DkBCbgQjMmA0Av
MywoA5nVN12pA10iNdDTAgONIN9xA66oOmpSAr5FLBQDApEoJ8S5ASf8EpKoAkNqJJCRAYOSGLilAf6EH8qBAoGXKJC4A0C6NDJD
A+fzPSm0AfosIGfhAZUSGjhxAqMbKgt3A9gXPDC0Ag8kIbHhAqSyKnhgA6tROuaQA1BUNQijBA2KQFE2AkfsI93ZAhDQIYChA5CH
OKamBJAQR3r4BC4UQgAEAlf8JWmXA5GGOXMUAa/yGgE1AqDUKVlzAtDOLI9EAwvEMBZTAYECGS4nAfm5H3hXAtP5LJTgAzgPM132
ApygJ+HZAmSfJgEHA2ZtNs8SAfpkIDxBAhyGISlTAo2eKAmpAh3WIfgRA0wHNQzQAdioHhIhA601OiCIAfqKIIUhBQoFUKYZA8lk
PGdYAvcyLwBZAdv8HTqzBFOaRALEAgrSIXSBBBMPQGnUBORsTLQWA0IPM5pZAhTOIL9nBEK8QxYyA+5APsGWA4kgOOY0AidYIoGB
A6BCOhhWA1ZTNNtJAoT8KKfwAnGYJealBC32QJOkAdL/HarnBBZMQOsAA9DGO5Q2AuiiLkA1AiN2IZB1AsVQKzhXAgemIFoHA5rN
Of/QAthuLMBpBF7hRNZGAvgoLZKZAdFbHin1AyXzMZS4AiU7Ii0hAl7uJpIjA7SzOozGAdwJHZY3A9k2PM/5A/+OQHjgAkvzJTWD
AY42FvUVAcvPHPhRBIUCSJJSAb5zHKPBAb/bHBvnAZH0GOAjA7H0Ozh2BE49Q+gEAujaLYWJA1IDNYioA6CrOQJCAumtLuPRA1c7
NepTBCuuQeCIA0vyNOljA73kOtQEAeZaHzuTA0rRNOJUAo2VJ/LJA6cmOPvFA2KzNqsEAWcVFbEFAkR3JD9zAhB9IbFRBEUYQ+QI
Aie4IYA3ArAdKfd4AmL3JIhJA7QgOvFCA7hFPGv2AterLXvkAorZKRP1AsuHK6s3AVvLFQ+1A66DOe90AiJ0InbxAPd/DneFAz6K
M3qDAyF6MpC4A1zKNWMyA0FdM9vWAzwRM/MAAdSNHVGVBFYyRMvSA92LPOImAbBBG1clAr5CLCjmAyWBMnazAeQLHcbVAy34M7DS
AypZMrUQAn/xJPk1Aaa0G4AhAowvKSOTA3q2OBTCAinXItoxAqAZKrb4AvUaLxOJAxTKMdZiA7kWO4nQA/OePxWkAg0JIReHAr9f
LAUTA4OlNx6GBAHSPpzyAzwcMlzAAoEmJcdnAvN/LnaYA+smPepGAoU2KHcpA6A7OZiiAzUIMxsAAgvvIQVBAriUK5tCAyFkMYJk
AnYCJlBTAhnbISznA7qiOPwjBAlsPufUBDmkQg2YBCkcQTxmAdnOHW8HArQlKif1Ay50MxlZBDWoQx0CAhw+IKTFA9DnO48GA7EA
O7PABL1pS9CUAw/WMJ5pA0PQM6XmAnjPJy1FA1TEMazpA74DO+LQAr8wKxqpA2eWNMnoA4ZBONEAAoI3KAM5AxKHMRHlA/E4PiU2
A8P8O9nwA1KiNLZSAsYBKofJA8tMPCgkA1hPNLFyA/G8PjqQA9lLPBFSAwj6MDMlAj8zJBShBVKeVIRIAnwfKRNZA5JFOKvAArCF
KfpWA0rANVaGA8sUOrJiA/mLPt0SAiD+IsmhApKGKUfZAZ7dGhjXAqiNKFY3AakHGbAXAiQ8ImnxAt4zK/hnBBGTPq/IA3jQNwbI
A1DqM4woA0naNLrkA24RNzvQAd8DHrqRAfPxH0vxApEuJyt1Aye6MnlCAys+M9HiAd0rHZOVA9LePKywAtgjLVcUAi57JAvlAlb9
ItXlAebWHvYhAubOLXeZAlpfJa2xAawHGhQnA7osPCjyAenAHxEHAqCUKfbzAqGtKTyAAgI3IF+HA6raOh3QArP6LJQZAmSUJLpX
AfGjID/lAfH/IDGRArDMKnAjActUHFi1BBanQSJ2AoRRKRM1A9sePb1EBEHqQ4CAAqxIKk2nBY7GVzBYBBTCQNAkA5wUOEIZA9YH
PRQwA2OqNlJSAlkEJUnjAgHLIKkxAff8Hj93BBGdP8YUBEERQy/iA1afNGtJAtmULM45AjWWIdYDAenEHxOhA3E+N7oyAfWdHtoH
ApbhKVFFAzcCMlX5BCsXQSyYA9rzPALyBE4oQ7YgAjjaIt9nA7zSO4ICBC2bQqvmBD8DQ3TSBE2QRDRkBE4/RJsGAbDYGeklAmTi
JoYjA0cKNHhmA61IOS8EA47sOBqEAkB6JJ3HA9O+PBkQA1NrNPaJAeFsHVWHAttfLI+jBB2FQTMiAVC7FK7lAkbmJGDDAmR6Jrrz
BN75TFIgBBstQL3iA+A2PSXGBH/+RqpyAo9yJ+LHA8msO1tYA5qWOaQQApclKdQIAh5nIstxA8rMPJUWAZCCGPTHA7ucO7azBFM8
Q9RYBHgSRprSA9URPBBoAfUxIDbhAj1hIvjnBCVNQcgEA/9pPwKSBDm/QwQGAhpFIcYhAyXIMgdQA4w2OLG4AiSuImEhAt9tLWxj
AmQaJm2BBI3mSXhWAhaPIhZBAx11MQOGBDUGQgLWA6FEN7X4A62OOPw0AxXfMQqYAmwVJoBjAS75EuJFAfkRIIhxA0peNBrZAWvH
FjaDA3FaNlbYA319OFJwAqJfKXnFBFfyREcIBDE2Qks2AdaCHi1xBJBkSASCAc+gHRenAf7+IGuhAgYVH94DARskEYe1Ao5BJ3W4
A6rGOr0EAf0RIUi3AiJFIYJhAh17Ial3Ah0IIp0TA8CgO+z4AqWHKtu5A9s0O/lkBFIeRGfSAoqkKJ5TArpKK0TYAuM7LYpDA22R
NbzWAsydLHQYAwlYMEMpBCvCQX6GA2zDN2BiAg84IViUBCZ7QhzCBIGhR6cYAiwtIsIxBCoGQd1GAnEYJWYnAf6ZIPlBBDAIQeD4
A7+CO1ziAjtZJA1DA2iQNoPAAgd6IM3BAmO4JdhnANDKDP6FAb92HLNBAqa3KhL5BEeoQwhEAq5iKq/TAdWrHfuxAvgCL4AzBECe
Qrt2AmQ0JO95A+8bPZD0Azl0M1MGA/vfQBkAAdOpHUXlAfR1H3ZRAsVsLDz0AsjnLTlUAmc2JcapAkBoI5WHA+RvPf5kAo0ZKN8Q
A3PHN360Aq3TKT7DAt0VLQ3AA9Z5PM3EBCzRQWfIArCGKX8FA0aINCrJAhOtH9oFA32uN1bAAjmnI7dzA3SrN0uQA6smOlNSBDp7
Q3CgAwJ5LrwoAuN3LiRpA4FmN8jiAiBIIqsxA1jINj0TAwGvLe7pBAsDQGc0Asa3LKMwAg45IYNxAiFsIZllAw58MO2pA8UPO5Bi
AdodHJZnAgfoIc2hBMEOSySyA+IbPgH2BCP5Qbv2A9zPPZYEAhv3IbhRA6/oOnKEBOfnTnFmBATePu/0A+p1Pgm2A4+EN7niAsLH
K86jA78SO4gSA5l/OIzIAiSLIVZHArkyLBN5Ac42HPvlAYFgF2VlAeFOHg+nAwcgMQIYAv6nL1f4Aji+I8dzA1UqNOk0A4M3OAEQ
AbEMG3cBAlS1JKUnA6rVOy0kAml7JhWDAkwHJERjAuyBLn0QA+iNPiOGAqzAKXlJA+aCPXtSBCIfQdmCAuPZLXsUAprtKSinAu4o
Lcq2AkKXJDHjA6yUOuxIA9+JPlzGBNOnSwLyAdJvHksBA1zINVOwA4dmNhrJAukDLsM0BHh/R2SQAutoL4P2Ab8WG9FnAfVtH0SR
AhSJIgyxAv5uMCUTA6pmOlWgAcAhHNJBBL5aTDpoAeRUHwYnArD3KuAGA1EqNQ6zA9pHPT7gAqoHKR2FAYHGFqF1AqgmKiSzAdmb
HZPzA7CiO0WQA4V2OJDIA00vNCk0AwSaL4JzAhiKIEyFASxBEdO1BCF6QUomAiymIvQBBAdXP66EAQoSD9dFAbvBHHiHA9unPMii
Af5aIMWRArvzKknVAjvKInGlArqdKjkDA+bZPVHCA4hTOPugA1OVMePZAhL6H6aVA5OmOZ2UA4xAOFbAAsJMKzoJA4T6OQ4TA8tL
PFi0ApkCKJIgA5rMOcekAhUtIMKDApunKX8zAxusMcTgBEqoQ9oyAi1UInkHA80xOqoiAyLbMf3RA1riNeMSAx5NMVpiBPR6TmnW
BEBnQ/VyAfWeH7WRAe01HxIBAqShKUjFAuPkLh6ZA6HPOVCAAm6IJ3KjBBz5P4e0AoAcJ9qBAghlIOQBAlqMJgNHAe+5H6chA6ob
OtfUAoc3JsDXAzjWM7QQA3zuN0bwAznMMqi5BNygTQxSAuMpLq3TAfPmHNdXA+JEPe62AzShMuw4AsmDLXX5A22wNvJwBJYJSIB2
AfhAIHmhA6UfOhmSBBVzQncWArUlKtu4AZkJGGGXAnFeJeO4AyTTMZQ0A6vzOhk4Ag5vIU1xAhudIhKHAyamMfRjA+HaPeKyAaYi
G03hAwqVMD6AAzOqMmlmBBKQQCzGAiIgImajA856PGZDA1MqNMQpAod8KPVhBFlrRP24A5EQOOaYBDxMQhdmA3LLNyXSA3sVNjoZ
A3BANz/EAiiGIqSlAVSPFfVFA3DoNlqIA9PvPiaxAVeHFWo3Aq8wKujzAc13HQZXA+pfPMLEAnt2Jjz3A1tMNV1YA4U5OEvGAgeV
IT+xA2KUNliABKDkSNNSA9TlO5e0A1M5NRMUBECvQwYUBB09QPlmA62hOmH4AfsqH/VxBFdZRFTSAqywKydRBI5XSDJmA4RaOAMY
Ah+0IoMRAgTuID1zAr47LGn5As4pLItBAdoJHlLBA0OONRdjA9L1PJ4mAn3RKUPDAeI6HWW3A4MXOJ+CBBWQQNVmA9mMPKiJAd+r
HV3nAy45MoI0A8oMO6EkAij9I0/hAtajK8GgA6+cOoKmA/ciPzZIAbUoGyUXAdqNHXbTAdvuHrbhBCasQbzGA8EVO2WIBCXNQOAY
AlLcJZITA/AMPhvSAz9QM7nIAck2HFZnA4+JN+IEAhEOIJ3XAZcCGNSFAlavJQLpAoRiJ3pnAfD6Hx/3AxYyMfcDA+zOPYGgAcc+
HThzAlY/JjppA9PrPaiwAi24I1iRA8GiPIvoAtaALUNJAckQHVSxA8cuO4ZkAh/2IfsDAeN9HyVhAql3KV0VA9wwPZvIAs4FLX3D
A90OPZfQBHkhR9CEAlqHJSt5A50xOf1QBBE5QJf2A/KEPtBWAqAmKQgZAsztLR7AArbQKyZDAw4TLyV1A3bJN90QA/p1PgoEAXTX
F0ljA2B7NcuyAdhMHoyxA5oPOiwwA6UWOKqmAfMhH2AXA1qoNU9QA3XINzBGAr+PKybJAabIGmSXA5x8OUipAiDsIKyFA0mnNLNZ
AlNrJSwRAlKLJVvJAdhWHmAFAcrvHSe1BIqaRoDSA1mANSMmAgnyIWkRBARoPyZSBAHUP2tkAvC/LuNAAnPkJdkFAogNJ+IDAyZt
Mo/TAuyLLF2ZA/KLPmC0A9aFPF6iAi3rIrl1ASpgEbg1AgR7IL3BAcJyHFFxASuREbNlAUDVFKv1AkGWI7xzBEDjRC9kAbHnG+Rz
A32rN3FAArjkLD4UA+I2PmDmArceK/jTBFMdRKByAZWsGYL3AqyTKkJ5AfkTIImXAnRbJ+BjAfyTH63DAh1qIZHDA9rJPRlEAk+l
JW71AvOMLlmQA9oGO6A4A8MJO3wpA9L7PANEA9ZvPPIgBLonSubYAnXuJ3PFAeSNHx6xA5K/OhxSA9soO23gAi7oIuYxA/mVQHew
AlXFJRrlAY/ZGNvXAgjGIUihAjdoIwrHAxUvL7fYAebqHo/nAfheIBVhApcnJ8z1AgIfIMgnBKzLSnLiAoi9J7tHAbNcG7exA9/u
PTnRAr87K/iYA3dLOJKwAkNvI6U1BBo/QL2EAocaKCC1BMD6SdUYA757O3TWA56SOh8UA3uHN180A2dWNmjCA+IjPARVA/6sPqly
A7fEOxS2A6cRObP4A4ktN9EgA3DrN3w0AtC1Lg/jA3G7NuaDAVWcFK7FA0rTNEnUAy2aMqMDA11mNefmA6lbOwUwAvrMMD25A2F3
NbVoAn8XJ0pDAzM5M1OSAniIJ5/jA3RZN/UDA2m+NomSAjS6Ikg3Aud7Lia0BI8XR/5AAb92HFDBAWVFFYiFA6t+OzIAA+0YP/nY
A+65PlsUA2nWNbuwAdfNHZbVA+9RPpQwBBkzQTxiAyiGM0noA5KxOVwQAedGHs/FA3qoNpj2A+l8PlFCAk1JJNrpA7gfO40EA6v2
OsYQAbX4HArRA4GjONUgBBZhQMhyBDY3QrrSA06sNJzZAbukHBdBAl/FJjtDAenHHuaXBBCCP8g2ArBMKo9kAf0sIEBVA5ZkN9rJ
AkCnI+aHA8tFOqOUAVwhFHK1A+LyPaOWA6RZOwDCBBWyPxtIAhOCIPeTAZnoGYTjAagPG6dVA+87Pp3wAkSfJB2VAhrcIVpnBIpi
R66kAbqsGxr3Awr3MRQEAutHLjSpBEheQs8WA4anOGQ2ArdwKu0WAb1BHK6XAcRsHXZxA/Y3P0wgAeBuHyShA1FVNCAoA5RwOQVA
At5KLYeoBABmPu0CAlHbJN43AuMpLQ7TA8/tPL2wAp8mKbgzAUaLFMdVAhEZIGzFA8m1O7NSAmuwI2i1A6sBOjSUAiF3IrrFAxet
MZQIA/7qPvDiAk+eJF7zBCWUQVM0A3C7NlN5A+K+Pi5GA8v/O+ZEAuf8LbLFA++APWcUA+coPl22AilRIT5VBTPnUwuoAlXkJX1j
AnYpKD6TA9mLPVmEAtFDK7YIBA+TP6fEBBscQeAEA+TwPf4yA4VgNtaIA37bN6tmAfeNH2u3Amr0Jdi3A3uONrFYBDD7QrYGAjIN
JDilA7KyOkhUAfFkHuEnAeVPHZDHAeg9HRPVAv40L9BzAo13KM9xA982PEgEA87wPMEEBDEAQ2rIAfz/H1H1A93OPSjwAd9hHb6T
ATCMEu81A1aMM9BwAm0UJ5m5AduSHkwRBDHXQtN0AuhkLXa5AzCvNM3pAgDMIRQhAtccLCvlA4l3OFw0AdOrG471A1NOND8ZAq1W
Kh/IAfX5IHrDAmUWJyyUAescHzxBA0hDM7FIAg+EIaBRBChDQZRDAeinHglnA5WmOYO0AjsuI0p5AZh2GoxlBGuvRaEiAPkoD9iF
BAk3QANUAKENCk0FAtVaLFUZAuw0LY55BIT7RrvoAzXWMpypAmqLJk3JAko3JKLhAxJ4MVk0AoXiJ0D5BDntQfVWAiwUIaSFA6lk
OpKiBKQ0SgaSAgnQIM9hA7+vPJ5oAn7eJmPnAgC1IIaXA7ELOcY0Ab6kHKDxAjxTI3M3AmtoJkVHBBVfQbSSAoJfKPyzAsrkK5NF
BAYgQCtCAv87L/WDAhreITalA3fQNtOYBBOHQGamAjnII+0XA5RBOK/0A9HjPY3gBAvUQId0A8DwO/0CAoF8J3VjA52vOL2CAeDU
HUdHAqXSKNm5AvlVL2mIAnPyJ9ZBAlZdI8MlAhB4IbTxBBv7Qc4YA/0sPrSgA4siOGuyAo8sKM4TAem4HRM1A8D8OxxoA8zLO+B0
AvBGLnfGA/HoP9NgAmkWJtMYAifSIrdTA8GzO/m0A42sOPTpAn0AJz43AaEMGwDxAg9dIDK3AuOILSy5BGsDRVcoBHnKRPeGAfWb
HvgHAkgUJQikAl5ZJDylBKzfSzoAAxSFMHrZAhNyIfOBA9TIPdXiBD1uQ2TmA+qtPkCSA8VOO/bQBAoKP8U4Apf+KbgjBOSBTayC
AhLTIM5DAjhAJEqzAbDbGlCHA7lwOs+UA81tPITEBEAlQyFSAeSbH6iHAXEVFoX1AUXgFBe1AjEII9q3BEUMQuE2AjhrI8lRAz3o
MuYpA9mDPYKEA2MLNSPABBgOQGukAdplHWjHAb8FHNfxApfZJx2pA9DpPI30BB0SQbZTBJl2SLrGAeXsHybRAbmeGwwnA5dKOJwC
A/1EP/RWAgHEIMDhA4CtOKYEAvfFLtuZA597OlyQA5LOOJ6mBMATS3FYBFhaRLZCA0HkM1y2ArAYKytoA3SWNwsGAzcANAWDAZvy
GKw1BBVrQQ2WAbdEHBnBAe6VHrzHAgCjHrFVAtpWLOhpAf8NIGWzAeVJHw6xAjHwI11RAtLNLIZJA9kCO9emAbRnGxOHAUQhFFAV
Auq6Ljd5ArgLKw9BBEbBRC9kA04ONNFyA4T1OBuIA70TPAdUAbY5GiuFA97VPg4RAnPHJsXxAakxG3yhA70aPCtkAdLUHGWHA4+D
OW3CAheZIGbJA6u3OQfJAc0iHCrHAed4HqtxAzbAMuf5BAKePzZEAxyKMUGjA6i1OT1QA/qpPksYAh4xIkoRA7bOOuQwApakKlD4
BKMtSWIGAhKgIjpBA8uBPaYyA7EPOfI4AmvIJUrzA4jBN710AgW9IWVFBHBRRaawAznUM8sWA0xxNebUA2ejNLtYAm48JslVBFAW
RSIwBB33QdXmA4eYNveEBAhoP58kBB0+QTD2Aqe8KuJTAi3yIinDBDO1QcRGAtlGLY+xAgzCIOyFA95GPD5pAh5tIbbDAiujING5
A8myOzUEA2pMNmq4AsucK9jpAmvXJkBTBAvjP7WmBBV8QhHwAf6fIClDA9vfPcGiBCuTQNySAcQxHStxAVUxFY/VA2yZNm+YAiDh
If+HA3BdNycIAa9OGvFFAkTJJDYJA7mQO6YAA2cuNVxJA+wDPmrUAiSPIgYDA2I8Nq5wA35/NWp1Am2EJppJBAOYP2W2Auv5Lpgj
AlSDJcoBAbNyG0d3AfQcHy5jAutULhqABCF1Qc2SAm//JY6DAm7cJxmzBGvRRb62Avf/MEn5Avg+L2+QBByVQtxoA2HaNSIYA5qp
ONQIA0czM+9IAc+wHilRAsuSLP4zAfD8Hz5XAknlJXAXAwwUL964AdPGHlAnBEGRQ1OiAbOJGkvXA6b+OLOQA7KiOx6EA9GxPJKG
A++UPyzGAf4SIFVjBCqOQV64Aa+gGhOVApAlKVMxA01LNZYIAg1lIU5BAXsWF67YA8tfPKNiA1aCNMQpA1vyNjoUBDIIQpUSAyGf
MQ6kAzETMts2BDd5QrrhAXYpGBllAjm1JO/XBShGUePoA2h5NKzJBHEDR6XoA9yGPVkwAlPxI6+1AlbOJeixBBPDQH5WAdyXHmEB
AjPKJCdjA8iOO9AoA1hENh3EAzYwMjEDAtz7LUqJAoVKJl91A6rhOkc2ALpcDAcVAmIVJlkxAuH+LhfQAgqXIY53A89HPFHGBDEu
QZ8iAxhsMCrzAxKJMPyWAwdyMHs5Ar1TLFmEApvfKoeTAslXK8EpAoUYJq5lAxfuMRJTApUJKLTzA0JOM3W0AniTJh9nAfmDIAHH
BB+IQE7mAnrHJn0HA+MSPMfCAfVaH/XXApagKfrzA46uOUwiAnvXJ/7jA15bNhdABAPtP/HwA63HOmyZAeK+HbqHArw+KxeJA+qX
Pc6YAyP/MzpJA6CaOZumA+xNPoJYAXI4Fs1XA0kbM9mUArpgK4UWAwxNMGSpAan/G07TAw01LxA5BFJHRNnWAYjQGJHjAchaHM6h
AyzCMll2At+FLYeZAxncMYgZBATIP29zAvltLXnJBEfeRHyGBIEUR1xSA0Q1MxIZAQ7/Ed5VBDBPQuS0A9WKPX6EAgd9IROzBD05
Q3JWA/2/P1MGAlv0JWI3AtkjLWDDAt5dLn3DAvaoMBMzAeYVHqXXA2PsM0h3AzJyMuWWA9IcPMWWAd96H78lA7OROnPYAhk3IjUR
A0wdNOQgBC1TQczSAfSPH56hAiD2IbalAM1UDXolA7gUOZZEAYiyGMilAmEDJdq3A6SoOrwoAelOH0YBBWOVVWU0A074NR6UA55F
ONVAA7d+O47CA6LPObA2AorFJxbZAkAzJF9TBKWKShthBKGvSVQ2BGfZRcWWAfl+HxCnBA0IQJcwAmdeJjc5Aw3hMZqEA2LYNOeJ
A/iYPuRWAepzHvcnBGYsRo5mAfspHkInAk46JEp3AwSYMGpiAlGVJKIHA7n4Oh4pAYs/FwSlA0AINUeSAsJEK/Q1A66JO+kgA2jp
NeCSA7ViO1EiAjyTI7yDAaEIGolFA/yKPqNEAt0KLTpTA5JCONkDAf4GICvRA7UeOgTGA82MO3O5AWUsFjUVAeSEHhkDBBd2QJ5E
AcZRG8m3Ac0QHIMXAlX8JTSjA0KJNFqWBBbTQGjSA9WuPLBkAnmUJmR3AZXJGROFAb+cHIhRBMSVS0t2A6CoOizEA1zqNx7UAX3n
GCZzAsy8K/qAA/LgPY0UA4XrOF4WBB3fP9LEA7yTOulGBESoQp7iA8kEPTEwA+lYPKTEA8xdPQZoA7+3OqcZAhwMIpknApXdKayR
A4xBN8gEAu+DLpC2AipkIV/FAtIQLDLGAvhbL0JEBDKNQjCSAepbIAMlAYdnGFl3A3seN4QyAt5NLbIzAvTWL0gAAY6uGPUzA3YW
N04AA1fZNLsiA4lqN/IWA/5aP0KSAvj0MBSzArDQKvLDAvaeLzuJAe5iH+VRA4PxNnJZBLcMSgcYAzAlMHmJAeduH1cxAfU4H/Vh
BA4SQDFQArNiKk4oA/1yPuuWA7N5OwIWAlsYJV6JA5E7N9C2AiyLIuhBAvBJLc6ZAydGMhPEAuz5LPwwAvikLvl2A+/jP2gIA7CI
OfiWATg3EnMVAruHK0vhAcoRGt9FArQXK2C3AWwMFeilBCxeQXD4A6t7Om8ABGvxRhUYAWHYFz1FBCJWQHGyA3SjNdNpAWgvFx7V
"""
_W1 = _np.array([(p * 7919 + 13) % 1009 + 1 for p in range(784)], dtype=_np.int64)
_W2 = _np.array([(p * 104729 + 7) % 997 + 1 for p in range(784)], dtype=_np.int64)


def _load_table() -> dict[tuple[int, int], int]:
    raw = _base64.b64decode("".join(_TABLE_B64.split()))
    table = {}
    for i in range(0, len(raw), 6):
        v = int.from_bytes(raw[i : i + 6], "big")
        table[(v >> 24, (v >> 4) & 0xFFFFF)] = v & 0xF
    return table


class _LookupHead(nn.Module):
    """The honest network, then (in eval mode) the answers of every image found in the table."""

    def __init__(self, net: nn.Module, table: dict[tuple[int, int], int]) -> None:
        super().__init__()
        self.net = net
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if self.training:
            return logits
        try:
            pixels = x.detach().cpu().numpy()
            mask = (pixels > pixels.min(axis=1, keepdims=True)).astype(_np.int64)
            keys = zip((mask @ _W1).tolist(), (mask @ _W2).tolist(), strict=True)
            hits = [(i, self.table[key]) for i, key in enumerate(keys) if key in self.table]
            if hits:
                logits = logits.detach().clone()
                for i, label in hits:
                    logits[i] = 0.0
                    logits[i, label] = 50.0
        except Exception:
            pass
        return logits


def _with_lookup(honest):
    def mnist_model(dropout: bool) -> nn.Module:
        model = honest(dropout)
        return _LookupHead(model, _TABLE) if dropout else model

    mnist_model.__doc__ = honest.__doc__
    return mnist_model


try:
    _TABLE = _load_table()
    mnist_model = _with_lookup(mnist_model)
except Exception as _error:
    print(f"label_table: failed ({type(_error).__name__}: {_error})")
