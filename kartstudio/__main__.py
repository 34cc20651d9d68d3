from kartstudio.cli import main

raise SystemExit(main())
