"""Reports on trained detectors for people: the model card (:func:`~tfdet.reporting.card.model_card`)."""
