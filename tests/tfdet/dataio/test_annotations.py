"""tfdet/dataio/annotations.py: the converter's record validation errors."""

import pickle

from tfdet.dataio.annotations import RecordError


def test_a_record_error_crosses_a_process_boundary_whole():
    # the converter's worker processes send it back to the parent through pickle, as multiprocessing does
    error = RecordError(7, "images/a.jpg", "box_inverted", "box 2 has ymin 0.6 > ymax 0.4")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is RecordError and str(back) == "record 7 (images/a.jpg): box 2 has ymin 0.6 > ymax 0.4"
    assert (back.index, back.image_path, back.code, back.detail) == (7, "images/a.jpg", "box_inverted",
                                                                     "box 2 has ymin 0.6 > ymax 0.4")
    assert str(pickle.loads(pickle.dumps(RecordError(0, None, "no_image", "no image")))) == "record 0: no image"
