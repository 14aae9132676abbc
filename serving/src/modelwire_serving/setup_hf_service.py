"""The seed's script name: `python -m modelwire_serving.setup_hf_service ...`.

Takes the seed's flags (`--model_name_or_path`, `--device`, `--port`) and every
`modelwire-serve` flag, and serves the same routes.
"""

from modelwire_serving.cli import main

if __name__ == "__main__":
    main()
