"""Training throughput under the peers protocol, the same for every Keras (tf_keras for tfdet, Keras 3 for
KerasHub): a warm-up ``fit`` (tracing), then a ``fit`` of ``steps`` steps timed from the start of its first
step to its end-of-training callback.

The clock leaves out ``fit``'s own set-up and tear-down (data adapter, iterator): on these machines the
tear-down after the last step varied between 0 and 5 s from run to run, which made a 4-step measurement
bimodal (one R50 configuration measured 0.78 and 1.24 img/s on the same code). The cause, found later:
deleting a half-consumed autotuned tf.data iterator waits for the autotuning thread's next wake-up
(see tfdet.dataio.pipeline, whose pipelines now turn autotuning off; the workers' fixed-batch datasets
do not go through it, and KerasHub's run under Keras 3 the same way).
"""

import time


def step_clock(callback_base) -> type:
    """A Callback class (of the Keras whose ``callback_base`` is given) recording ``started``, the first
    step's start, and ``ended``, the end of training."""

    class StepClock(callback_base):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.started = time.perf_counter()

        def on_train_end(self, logs=None):  # after every step's logs are read: the steps have finished
            self.ended = time.perf_counter()

    return StepClock


def images_per_second(model, batches, callback_base, steps: int, batch_size: int) -> float:
    """Images per second of ``model.fit(batches)`` over ``steps`` steps after a 2-step warm-up fit;
    ``callback_base`` is the Keras Callback class of ``model``'s Keras."""
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: tracing
    clock = step_clock(callback_base)()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
    return steps * batch_size / (clock.ended - clock.started)
