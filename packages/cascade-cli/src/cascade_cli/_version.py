# Every package of the workspace has the version in VERSION at the repository root.
# Change it with `python dev.py bump NEW`, which rewrites this line and every pin.
__version__ = "0.4.0.dev0"
