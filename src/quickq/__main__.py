"""``python -m quickq``: the same command line as the ``quickq`` entry point."""

from ._cli import main

if __name__ == "__main__":
    main()
