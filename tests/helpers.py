"""Small builders shared by several test modules (tiny random datasets, batches, a fixed-vector model)."""

from __future__ import annotations

import numpy as np
import torch

from alignrec_lite.data.mmrec import RecDataset
from alignrec_lite.models.base import Recommender


def tiny_dataset(
    n_users: int = 30, n_items: int = 20, d_feat: int = 8, seed: int = 0, features: tuple[str, ...] = ("image", "text")
) -> RecDataset:
    """A random dataset where every user has 4 train, 1 valid and 1 test item.

    Feature ``j`` of ``features`` has ``d_feat + j`` columns, so image and text differ in size.
    """
    rng = np.random.default_rng(seed)
    train, valid, test = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=6, replace=False)
        train += [(u, i) for i in items[:4]]
        valid.append((u, items[4]))
        test.append((u, items[5]))
    feats = {m: rng.normal(size=(n_items, d_feat + j)).astype(np.float32) for j, m in enumerate(features)}
    arr = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    return RecDataset("tiny", n_users, n_items, arr(train), arr(valid), arr(test), features=feats)


def batch(ds: RecDataset, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(users, positives, random negatives)`` drawn from ``ds.train``."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(ds.train), (size,), generator=g)
    pairs = torch.from_numpy(ds.train)[idx]
    return pairs[:, 0], pairs[:, 1], torch.randint(0, ds.n_items, (size,), generator=g)


class FixedModel(Recommender):
    """A recommender with given final vectors and, optionally, a linear content path ``x @ content_w``."""

    name = "fixed"

    def __init__(self, ds: RecDataset, user_e, item_e, content_w=None):
        super().__init__(ds, {})
        self.u = torch.nn.Parameter(torch.as_tensor(user_e, dtype=torch.float32))
        self.i = torch.nn.Parameter(torch.as_tensor(item_e, dtype=torch.float32))
        if content_w is not None:
            self.w = torch.nn.Parameter(torch.as_tensor(content_w, dtype=torch.float32))
            self.encode_content = lambda x: x @ self.w

    def forward(self):
        return self.u, self.i


def random_fixed_model(ds: RecDataset, dim: int = 6, seed: int = 0) -> FixedModel:
    """A :class:`FixedModel` with normal random user, item and content-projection vectors (``dim`` wide)."""
    rng = np.random.default_rng(seed)
    return FixedModel(
        ds,
        rng.normal(size=(ds.n_users, dim)),
        rng.normal(size=(ds.n_items, dim)),
        rng.normal(size=(ds.feature("image")[0].shape[1], dim)),
    )


def exercise_tests(cases: dict):
    """The three tests every exercise module gets, parametrised over ``cases``.

    ``cases`` maps a name to ``(checker, right_answer, [wrong answers])``. Returns
    ``(test_solution_passes, test_stub_is_not_attempted, test_wrong_answers_raise)``:
    the right answer passes and prints OK; an untouched stub (``...``, ``return None``,
    ``raise NotImplementedError``) is "not attempted", never wrong; each wrong answer
    raises :class:`WrongAnswer`.
    """
    import pytest

    from alignrec_lite import exercises as ex

    def ellipsis(*args): ...

    def none(*args):
        return None

    def not_impl(*args):
        raise NotImplementedError

    names = sorted(cases)

    @pytest.mark.parametrize("name", names)
    def test_solution_passes(name, capsys):
        checker, right, _ = cases[name]
        assert checker(right) is True
        assert "OK" in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    def test_stub_is_not_attempted(name, capsys):
        checker, _, _ = cases[name]
        for stub in (ellipsis, none, not_impl):
            assert checker(stub) is False
            assert ex.NOT_ATTEMPTED in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    def test_wrong_answers_raise(name):
        checker, _, wrongs = cases[name]
        for wrong in wrongs:
            with pytest.raises(ex.WrongAnswer):
                checker(wrong)

    return test_solution_passes, test_stub_is_not_attempted, test_wrong_answers_raise


def prediction_tests(predictions: dict):
    """The three tests every predict-then-run checker gets, parametrised over ``predictions``.

    ``predictions`` maps a name to ``(check, right prediction, [wrong predictions])``, where
    ``check(prediction)`` compares with numbers the test fixes. Returns
    ``(test_prediction_right_passes, test_prediction_stub_is_not_attempted,
    test_prediction_wrong_raises_with_the_numbers)``: the right prediction passes and prints OK;
    an untouched stub (``...`` or ``None``) is "not attempted"; each wrong one raises.
    """
    import pytest

    from alignrec_lite import exercises as ex

    names = sorted(predictions)

    @pytest.mark.parametrize("name", names)
    def test_prediction_right_passes(name, capsys):
        check, right, _ = predictions[name]
        assert check(right) is True
        assert "OK" in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    @pytest.mark.parametrize("stub", [..., None])
    def test_prediction_stub_is_not_attempted(name, stub, capsys):
        check, _, _ = predictions[name]
        assert check(stub) is False
        assert ex.NOT_ATTEMPTED in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    def test_prediction_wrong_raises_with_the_numbers(name):
        check, _, wrongs = predictions[name]
        for wrong in wrongs:
            with pytest.raises(ex.WrongAnswer):
                check(wrong)

    return (
        test_prediction_right_passes,
        test_prediction_stub_is_not_attempted,
        test_prediction_wrong_raises_with_the_numbers,
    )


def public_functions(module) -> list:
    """The public functions a module defines itself (its ``__all__`` when it has one)."""
    import inspect

    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    funcs = [getattr(module, n) for n in names]
    return [f for f in funcs if inspect.isfunction(f) and f.__module__ == module.__name__]


def missing_annotations(func, **names) -> list[str]:
    """What of ``func``'s signature has no type: parameter names, and ``"return"``.

    The annotations must also resolve (:func:`typing.get_type_hints`; ``names`` supplies the ones a module
    imports only for type checkers, such as ``Axes=matplotlib.axes.Axes``): a misspelt type is reported as
    ``"<name>: <error>"``.
    """
    import inspect
    import typing

    missing = [p for p in inspect.signature(func).parameters if p not in func.__annotations__]
    if "return" not in func.__annotations__:
        missing.append("return")
    try:
        typing.get_type_hints(func, localns=names)
    except Exception as e:  # any failure to resolve is what the test reports
        missing.append(f"{func.__name__}: {e!r}")
    return missing
