"""The public surface: exactly what __all__ says, sorted, shown as litewf.X."""

from __future__ import annotations

import inspect

import litewf


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name and nothing else, case-insensitively sorted."""
    for name in litewf.__all__:
        getattr(litewf, name)  # the runtime's names are imported at first use
    public = {
        name
        for name, value in vars(litewf).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert set(litewf.__all__) == public
    assert list(litewf.__all__) == sorted(litewf.__all__, key=str.casefold)


def test_exports_claim_the_public_module() -> None:
    """Tracebacks and stored error types name litewf.X, not the private module."""
    for name in litewf.__all__:
        assert getattr(litewf, name).__module__ == "litewf", name


def test_errors_derive_from_litewf_error() -> None:
    """Every exported exception is catchable as LitewfError."""
    errors = [
        getattr(litewf, n)
        for n in litewf.__all__
        if isinstance(getattr(litewf, n), type) and issubclass(getattr(litewf, n), Exception)
    ]
    assert len(errors) >= 19
    for error in errors:
        assert issubclass(error, litewf.LitewfError), error
    assert issubclass(litewf.InvalidValueError, ValueError)
    for sub in (
        litewf.NotADatabaseError,
        litewf.ForeignDatabaseError,
        litewf.SchemaTooNewError,
        litewf.CorruptDatabaseError,
    ):
        assert issubclass(sub, litewf.DatabaseError)


def test_status_is_a_str_enum() -> None:
    """Status members compare equal to their names as plain strings."""
    assert litewf.Status.SUCCESS == "SUCCESS"
    assert {s.value for s in litewf.Status} == {
        "ENQUEUED",
        "PENDING",
        "SUCCESS",
        "ERROR",
        "CANCELLED",
        "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
    }
