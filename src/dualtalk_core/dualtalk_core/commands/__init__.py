"""Sub-commands of the ``dualtalk`` command line; each module exposes ``register(subparsers)``."""
