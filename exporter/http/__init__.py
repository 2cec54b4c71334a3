"""The HTTP side: state (read by handlers) <- api, page handlers <- routes. Imports go one way."""
