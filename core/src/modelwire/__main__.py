from modelwire.cli import main

raise SystemExit(main())
