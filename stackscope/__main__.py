from stackscope.cli import main

raise SystemExit(main())
