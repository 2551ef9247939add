"""``python -m iterpref.train ARGS`` is ``iterpref train ARGS``; launchers (torchrun, accelerate) use this form."""

import sys

from iterpref.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
