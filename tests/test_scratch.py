"""The training hot loop's reused buffers (memcim._scratch)."""

import threading

import torch

from memcim._scratch import scratch


def test_a_name_returns_the_same_memory_in_the_asked_shape_and_dtype():
    like = torch.empty(3, 4)
    a = scratch("test.a", like)
    assert a.shape == (3, 4) and a.dtype == torch.float32 and a.is_contiguous()
    assert scratch("test.a", like).data_ptr() == a.data_ptr()
    assert scratch("test.b", like).data_ptr() != a.data_ptr()  # another name, other memory
    index = scratch("test.a", like, torch.int32)
    assert index.dtype == torch.int32 and index.data_ptr() != a.data_ptr()
    smaller = scratch("test.a", torch.empty(5))
    assert smaller.shape == (5,) and smaller.data_ptr() == a.data_ptr()  # a prefix of it


def test_a_larger_shape_grows_the_buffer():
    small = scratch("test.grow", torch.empty(2, 2))
    small.fill_(1.0)
    large = scratch("test.grow", torch.empty(10, 10))
    assert large.shape == (10, 10)
    large.fill_(2.0)
    assert bool((small == 1.0).all())  # the old buffer is no longer handed out
    assert scratch("test.grow", torch.empty(2, 2)).data_ptr() == large.data_ptr()


def test_threads_get_their_own_buffers():
    mine = scratch("test.thread", torch.empty(8))
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(scratch("test.thread", torch.empty(8))))
    worker.start()
    worker.join()
    assert theirs[0].data_ptr() != mine.data_ptr()
