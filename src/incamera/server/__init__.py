"""The server behind ``incamera serve``: HTTP API, static web app, meeting registry.

``main`` parses the command line and runs uvicorn; ``app.create_app`` builds the ASGI app.
"""
