"""Model code the TFX components load: the Trainer's run_fn and Transform's preprocessing_fn.

Model configs come from tfdet.zoo.
"""
