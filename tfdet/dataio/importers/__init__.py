"""Importers that turn common annotation formats into seed records."""

from tfdet.dataio.importers.coco import load_coco_records
from tfdet.dataio.importers.voc import load_voc_records

__all__ = ["load_coco_records", "load_voc_records"]
