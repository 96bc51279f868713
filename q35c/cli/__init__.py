"""The `q35c` command line: `main` builds the parser; one module per command (argument parsing and printing only;
every command calls the library)."""
