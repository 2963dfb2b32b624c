"""End-to-end tests of the demo: gradio_client against a live server, and a real browser."""
