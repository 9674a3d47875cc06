"""wxauth: WeChat mini-program login and token service (all logic; no Chalice imports)."""
