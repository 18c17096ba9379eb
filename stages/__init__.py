"""DVC pipeline stages: one module per stage, each a pure function plus a thin ``main()``."""
