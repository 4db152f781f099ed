from tertulia.cli import main

raise SystemExit(main())
