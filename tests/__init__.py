from pathlib import Path

#: The checkout, for tests about the repository itself (its files, the README, the build); the library never
#: reads it (it reads what is installed, through importlib.resources).
REPO_ROOT = Path(__file__).resolve().parents[1]
