"""Benchmarks: pynetdicom2 against DCMTK, pynetdicom and raw sockets, side by side.

``python3 -m benchmarks.run`` runs the suite and prints one Markdown table;
``python3 -m benchmarks.micro`` times the codecs. See README.rst in this folder.
"""
