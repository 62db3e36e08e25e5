from gifkit.cli import main

raise SystemExit(main())
