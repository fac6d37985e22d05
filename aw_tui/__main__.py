from aw_tui.cli import main

raise SystemExit(main())
