"""Moved: ``parameters-secrets package`` (pip install 'asgi-parameters-secrets[package]')."""

import sys

from parameters_secrets._packaging import main

sys.exit(main())
