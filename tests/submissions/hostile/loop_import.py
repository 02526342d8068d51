"""Hostile: an infinite busy loop at the top level of the file."""

counter = 0
while True:
    counter += 1
