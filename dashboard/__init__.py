"""ultrawatch's console, actions and entry points."""

import sys

# Where PYTHONDONTWRITEBYTECODE is set (this project's machines, many CI images),
# every start compiled aiohttp, psycopg, textual... from source again (~0.4 s per
# CLI run). uv's `compile-bytecode` avoided that but printed "Bytecode compiled N
# files" on every `uv run`. Instead, the bytecode of what ultrawatch imports is
# written on first use and read from then on: it goes next to each module in the
# virtual environment (or this checkout's __pycache__, which git ignores).
sys.dont_write_bytecode = False
