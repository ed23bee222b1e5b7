"""Inference backends: PyTorch (the models themselves) and ONNX Runtime (exported graphs).

* :mod:`unirank.runtime.onnx_export` - ``unirank export --format onnx``: each model kind's
  tensor part (encoder + pooling + head) as ONNX graphs, optionally dynamic-int8 quantised;
* :mod:`unirank.runtime.onnx_models` - the same rankers scoring through ONNX Runtime, with
  the PyTorch path's tokenisation, packing and length-sorted batching;
* :mod:`unirank.runtime.backends` - the ``backend`` setting (``torch`` | ``onnx[:options]``)
  that ``eval``, ``mine``, ``encode`` and ``serve`` load their models through.
"""
