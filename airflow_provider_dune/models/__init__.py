"""Typed views of API payloads, and the one place where a remote state is interpreted."""
