"""The local development server behind `make run` (`python -m devserver`) and its fake WeChat."""
