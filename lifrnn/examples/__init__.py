"""Example job specs (``*.json``) and a notebook; shipped inside the package, so an installed
lifrnn offers them too (the dashboard's submit form, ``lifrnn run``).

No code: nothing here imports anything.
"""
