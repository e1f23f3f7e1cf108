from __future__ import annotations

from pushd.cli import main

raise SystemExit(main())
