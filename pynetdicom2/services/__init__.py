"""The DIMSE services, one module per service class; ``pynetdicom2.sopclass`` gathers them."""
