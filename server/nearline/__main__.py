from nearline.cli import main

raise SystemExit(main())
