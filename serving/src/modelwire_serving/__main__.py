"""`python -m modelwire_serving` is the same as `modelwire-serve`."""

from modelwire_serving.cli import main

if __name__ == "__main__":
    main()
