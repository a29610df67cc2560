"""Application entities: ``ClientAE`` (SCU only), ``AE`` (a threaded TCP server too),
and ``StorageAE`` / ``ClientStorageAE``, which keep what they receive in a folder.

This is where scripts import them from (and ``pynetdicom2.applicationentity``, the
0.9.x name). They live by job: ``pynetdicom2.aebase`` (``AEBase``, ``ClientAE``: the
configuration, the choice of contexts and syntaxes, association requests and the
``on_*`` hooks), ``pynetdicom2.aeserver`` (``AE``: the listening socket, a thread per
association, admission, worker processes, ``quit``) and ``pynetdicom2.folderstorage``
(``FolderStorageMixin`` and the AEs built on it). Every name below is the same object
as in its home module.
"""

from pynetdicom2 import incoming
from pynetdicom2.aebase import AEBase, ClientAE, default_ts
from pynetdicom2.aeserver import AE, dual_stack_available  # noqa: F401
from pynetdicom2.folderstorage import ClientStorageAE, FolderStorageMixin, StorageAE
# Names this module imported before the split, which scripts and tests read from it.
from pynetdicom2.asceprovider import (  # noqa: F401
    GET_SOP_CLASSES, IMPLEMENTATION_UID, IMPLEMENTATION_VERSION_NAME, MAX_PRESENTATION_CONTEXTS,
    STORAGE_SOP_CLASSES, AETParams, AssociationAcceptor, AssociationRequester, PContextDefList,
    RemoteAEConfig, number_contexts, syntax_groups)

write_meta = incoming.write_meta


__all__ = ['AEBase', 'ClientAE', 'AE', 'FolderStorageMixin', 'StorageAE', 'ClientStorageAE',
           'write_meta', 'default_ts', 'AETParams']
