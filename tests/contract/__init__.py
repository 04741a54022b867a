"""Dune's contract checked by machine: the emulator and the client against Dune's OpenAPI spec
(``spec.py`` says where the copy comes from and what is corrected in it)."""
