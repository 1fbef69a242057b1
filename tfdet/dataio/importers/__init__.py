"""Importers: annotation formats -> seed records, one file per format, each chosen by name from
:data:`tfdet.registry.IMPORTERS` (``tfdet convert NAME``). A new format is one file here with an
``@IMPORTERS.register("name")`` :class:`~tfdet.dataio.importers.common.Importer`."""

from tfdet.dataio.importers.coco import load_coco_records
from tfdet.dataio.importers.voc import load_voc_records

__all__ = ["load_coco_records", "load_voc_records"]
