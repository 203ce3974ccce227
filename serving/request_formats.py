"""Request parsing: the six request formats of the two scoring routes, turned into rows of values in
signature order, and every refusal as an ``InputProblem`` naming the field and the problem.

Why a module of its own: this is the code every request runs (hand-written rather than pydantic,
for speed and for messages that name the field), and the code that decides what a client may send;
what the schema *is* lives in ``serving.schema``, and how it is *documented* in
``serving.openapi_models``.

``POST /predict`` is strict (JSON numbers for numeric features, no extra fields, finite values), and
takes ``{"features": ...}`` (named or positional) or ``{"instances": [...]}``. ``POST /invocations``
accepts what ``mlflow models serve`` accepts for the same signature: ``dataframe_split``,
``dataframe_records``, ``instances``/``inputs`` (records, columns or one record), CSV and Parquet,
with extra columns ignored and numeric strings and booleans converted for numeric columns, so its
clients can switch without a change. Numbers out of their column's type range are refused, never
passed on to overflow in the model.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from serving.schema import ModelSchema

INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_MISSING = object()
# The body is already bounded (DRIFTWATCH_MAX_BODY_BYTES), so a CSV field may be as long as the body:
# the csv module's own 128 KiB field limit would turn a long string value into a parse error.
csv.field_size_limit(sys.maxsize)


class InputProblem(ValueError):
    """A request the service will not score: ``field`` is where, ``problem`` what, ``status`` the answer.

    ``schema`` marks a request whose rows do not have the signature's shape (a required column
    missing, unnamed columns, no rows): MLflow answers those as schema-enforcement failures
    (``INVALID_PARAMETER_VALUE``), and values it cannot convert as ``BAD_REQUEST``."""

    def __init__(self, field: str, problem: str, status: int = 422, *, schema: bool = False) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self.status = status
        self.schema = schema


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return repr(value)


# ------------------------------------------------------------------ per-value checks
Check = Callable[[Any], Any]  # returns the converted value or raises _Bad(problem)


class _Bad(Exception):
    pass


FLOAT32_MAX = float(np.finfo(np.float32).max)
INT_RANGES = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}


def _strict_float(value: Any) -> float:
    kind = type(value)
    if kind is float:
        if value - value != 0.0:  # NaN or infinite
            raise _Bad(f"must be a finite number, got {_describe(value)}")
        return value  # type: ignore[no-any-return]
    if kind is int:
        try:
            return float(value)
        except OverflowError:  # an integer literal beyond 1.8e308
            raise _Bad(f"is out of range for a 64-bit float (an integer of {len(str(abs(value)))} digits)") from None
    raise _Bad(f"must be a number, got {_describe(value)}")


def _strict_float32(value: Any) -> float:
    out = _strict_float(value)
    if abs(out) > FLOAT32_MAX:  # would become infinity in the model's float32 column
        raise _Bad(f"is out of range for a 32-bit float (at most {FLOAT32_MAX:.7g} in magnitude), got {out:g}")
    return out


def _in_range(value: int, kind: str) -> int:
    low, high = INT_RANGES[kind]
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 30 else f"an integer of {len(str(abs(value)))} digits"
        raise _Bad(f"is out of range for a {'64' if kind == 'long' else '32'}-bit integer, got {shown}")
    return value


def _strict_long(value: Any) -> int:
    if type(value) is int:
        return _in_range(value, "long")
    raise _Bad(f"must be an integer, got {_describe(value)}")


def _strict_int32(value: Any) -> int:
    if type(value) is int:
        return _in_range(value, "integer")
    raise _Bad(f"must be an integer, got {_describe(value)}")


def _strict_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Bad(f"must be true or false, got {_describe(value)}")


def _strict_str(value: Any) -> str:
    if type(value) is str:
        return value
    raise _Bad(f"must be a string, got {_describe(value)}")


def _lenient_float(value: Any) -> float:
    """Like pandas' astype(float64) in MLflow's schema enforcement: numbers, booleans, numeric strings."""
    if type(value) is str:
        try:
            value = float(value)
        except ValueError:
            raise _Bad(f"must be a number, got {_describe(value)}") from None
    elif type(value) is bool:
        return float(value)
    return _strict_float(value)


def _lenient_float32(value: Any) -> float:
    return _strict_float32(_lenient_float(value))


def _lenient_integer(value: Any, kind: str) -> int:
    if type(value) is str:
        try:
            return _in_range(int(value), kind)
        except ValueError:  # not an integer, or more digits than Python converts
            raise _Bad(f"must be an integer, got {_describe(value)}") from None
    if type(value) is bool:
        return int(value)
    if type(value) is float and value.is_integer():
        return _in_range(int(value), kind)
    if type(value) is int:
        return _in_range(value, kind)
    raise _Bad(f"must be an integer, got {_describe(value)}")


def _lenient_long(value: Any) -> int:
    return _lenient_integer(value, "long")


def _lenient_int32(value: Any) -> int:
    return _lenient_integer(value, "integer")


STRICT: dict[str, Check] = {"double": _strict_float, "float": _strict_float32, "long": _strict_long,
                            "integer": _strict_int32, "boolean": _strict_bool, "string": _strict_str}
LENIENT: dict[str, Check] = {"double": _lenient_float, "float": _lenient_float32, "long": _lenient_long,
                             "integer": _lenient_int32, "boolean": _strict_bool, "string": _strict_str}

class RequestParser:
    """Parses the request formats for one ``ModelSchema`` (one per loaded version)."""

    def __init__(self, schema: ModelSchema) -> None:
        features = schema.features
        self.names = schema.names
        self._index = {name: i for i, name in enumerate(self.names)}
        self._strict = [(f.name, STRICT[f.kind], f.required) for f in features]
        self._lenient = [(f.name, LENIENT[f.kind], f.required) for f in features]
        self._missing_value = [math.nan if f.numeric else None for f in features]

    # ------------------------------------------------------------ /predict
    def parse_predict(self, body: Any, *, max_batch: int) -> list[list[Any]]:
        """Rows (values in signature order) from ``{"features": ...}`` or ``{"instances": [...]}``."""
        if type(body) is not dict:
            raise InputProblem("", f"the body must be a JSON object with 'features' (one row) or "
                                   f"'instances' (a batch), got {_describe(body)}")
        if len(body) == 1:
            features = body.get("features", _MISSING)
            if features is not _MISSING:
                return [self._row(features, "features", self._strict)]
            instances = body.get("instances", _MISSING)
            if instances is not _MISSING:
                if type(instances) is not list:
                    raise InputProblem("instances", f"must be a list of rows, got {_describe(instances)}")
                _check_batch_size("instances", len(instances), max_batch)
                return [self._row(row, f"instances[{i}]", self._strict) for i, row in enumerate(instances)]
        keys = sorted(body)
        unknown = [k for k in keys if k not in ("features", "instances")]
        if unknown:
            raise InputProblem(unknown[0], "unknown field; send 'features' (one row) or 'instances' (a batch)")
        raise InputProblem("", "send exactly one of 'features' (one row) or 'instances' (a batch)"
                           if keys else "the body is empty; send 'features' (one row) or 'instances' (a batch)")

    def _row(self, row: Any, where: str, checks: list[tuple[str, Check, bool]], *,
             extra_allowed: bool = False) -> list[Any]:
        if type(row) is dict:
            out: list[Any] = []
            found = 0
            for i, (name, check, required) in enumerate(checks):
                value = row.get(name, _MISSING)
                if value is _MISSING or value is None:
                    if required:
                        raise InputProblem(f"{where}.{name}", "is required" if value is _MISSING
                                           else "is required, got null", schema=value is _MISSING)
                    if value is None:
                        found += 1
                    out.append(self._missing_value[i])
                    continue
                found += 1
                try:
                    out.append(check(value))
                except _Bad as bad:
                    raise InputProblem(f"{where}.{name}", str(bad)) from None
            if found != len(row) and not extra_allowed:
                extra = sorted(str(k) for k in row if k not in self._index)
                raise InputProblem(f"{where}.{extra[0]}",
                                   f"is not a feature of this model (features: {', '.join(self.names)})")
            return out
        if type(row) is list:
            if extra_allowed:
                raise InputProblem(where, "rows must name their columns (MLflow's scoring protocol); "
                                          "POST /predict accepts positional rows", schema=True)
            if len(row) != len(checks):
                raise InputProblem(where, f"has {len(row)} values; this model takes {len(checks)} "
                                          f"({', '.join(self.names)})")
            out = []
            for i, ((name, check, required), value) in enumerate(zip(checks, row, strict=True)):
                if value is None:
                    if required:
                        raise InputProblem(f"{where}[{i}] ({name})", "is required, got null")
                    out.append(self._missing_value[i])
                    continue
                try:
                    out.append(check(value))
                except _Bad as bad:
                    raise InputProblem(f"{where}[{i}] ({name})", str(bad)) from None
            return out
        raise InputProblem(where, f"must be an object of named features or a list of {len(checks)} values, "
                                  f"got {_describe(row)}")

    # ------------------------------------------------------------ /invocations
    def parse_invocation(self, body: Any, *, max_batch: int) -> list[list[Any]]:
        """Rows from MLflow's scoring protocol: exactly one of dataframe_split, dataframe_records,
        instances, inputs (``params`` and other keys are ignored, as MLflow does)."""
        if type(body) is not dict:
            raise InputProblem("", "the body must be a JSON object with exactly one of the fields "
                                   f"{', '.join(INVOCATION_FORMATS)}; got {_describe(body)}", status=400)
        formats = [k for k in INVOCATION_FORMATS if k in body]
        if len(formats) != 1:
            raise InputProblem("", f"the body must have exactly one of the fields {', '.join(INVOCATION_FORMATS)}; "
                                   f"got {sorted(map(str, body)) or 'none'}", status=400)
        key = formats[0]
        data = body[key]
        if key == "dataframe_split":
            return self._split(data, max_batch)
        if type(data) is dict and key in ("instances", "inputs"):
            return self._columns(data, key, max_batch)
        if type(data) is not list:
            raise InputProblem(key, f"must be a list of records, got {_describe(data)}", status=400)
        _check_batch_size(key, len(data), max_batch)
        return [self._row(row, f"{key}[{i}]", self._lenient, extra_allowed=True) for i, row in enumerate(data)]

    def _split(self, data: Any, max_batch: int) -> list[list[Any]]:
        if type(data) is not dict:
            raise InputProblem("dataframe_split", f"must be an object with 'columns' and 'data', got {_describe(data)}",
                               status=400)
        columns, rows = data.get("columns"), data.get("data")
        if type(columns) is not list or not all(type(c) is str for c in columns):
            raise InputProblem("dataframe_split.columns", "must be the list of column names", status=400)
        if type(rows) is not list:
            raise InputProblem("dataframe_split.data", f"must be a list of rows, got {_describe(rows)}", status=400)
        _check_batch_size("dataframe_split.data", len(rows), max_batch)
        records = []
        for i, row in enumerate(rows):
            if type(row) is not list or len(row) != len(columns):
                raise InputProblem(f"dataframe_split.data[{i}]", f"must be a list of {len(columns)} values "
                                                                 "(one per column)", status=400)
            records.append(dict(zip(columns, row, strict=True)))
        return [self._row(r, f"dataframe_split.data[{i}]", self._lenient, extra_allowed=True)
                for i, r in enumerate(records)]

    def _columns(self, data: dict[str, Any], key: str, max_batch: int) -> list[list[Any]]:
        """``{"inputs": {"a": [1, 2], "b": [3, 4]}}`` (columns) or ``{"inputs": {"a": 1, "b": 3}}`` (one row)."""
        if not any(type(v) is list for v in data.values()):
            return [self._row(data, key, self._lenient, extra_allowed=True)]
        lengths = {len(v) if type(v) is list else 1 for v in data.values()}
        if len(lengths) != 1:
            raise InputProblem(key, "all columns must have the same number of values", status=400)
        n = lengths.pop()
        _check_batch_size(key, n, max_batch)
        cols = {k: (v if type(v) is list else [v] * n) for k, v in data.items()}
        return [self._row({k: v[i] for k, v in cols.items()}, f"{key}[{i}]", self._lenient, extra_allowed=True)
                for i in range(n)]

    def parse_csv(self, text: str, *, max_batch: int) -> list[list[Any]]:
        """Rows of a CSV body with a header line (what ``mlflow models serve`` reads as text/csv)."""
        # newline=None: a bare \r ends a line, as in pandas' reader (what MLflow uses), instead of
        # being an error inside an unquoted field.
        reader = csv.reader(io.StringIO(text, newline=None), strict=True)
        try:
            header = next(reader)
            rows = [r for r in reader if r]
        except StopIteration:
            raise InputProblem("", "the CSV body is empty; send a header line and rows", status=400) from None
        except csv.Error as exc:
            raise InputProblem(f"line {reader.line_num}", f"is not valid CSV ({exc})", status=400) from None
        _check_batch_size("rows", len(rows), max_batch)
        out = []
        for i, row in enumerate(rows):
            if len(row) != len(header):
                raise InputProblem(f"row {i + 1}", f"has {len(row)} values for {len(header)} columns", status=400)
            record = {name: _csv_value(value) for name, value in zip(header, row, strict=True)}
            out.append(self._row(record, f"row {i + 1}", self._lenient, extra_allowed=True))
        return out

    def parse_parquet(self, body: bytes, *, max_batch: int) -> list[list[Any]]:
        """Rows of a Parquet body (``application/vnd.apache.parquet``, as ``DataFrame.to_parquet()``
        writes it; what ``mlflow models serve`` reads with ``pandas.read_parquet``). Columns are taken by
        name, as in the other formats; a null is a missing value."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(pa.BufferReader(body))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise InputProblem("", f"the body is not a Parquet file ({str(exc)[:200]})", status=400) from None
        _check_batch_size("rows", table.num_rows, max_batch)
        try:
            columns = {str(name): table.column(i).to_pylist() for i, name in enumerate(table.column_names)}
        except (pa.ArrowException, ValueError, OverflowError) as exc:
            raise InputProblem("", f"the Parquet columns cannot be read ({str(exc)[:200]})", status=400) from None
        out = []
        for i in range(table.num_rows):
            record = {name: _parquet_value(values[i]) for name, values in columns.items()}
            out.append(self._row(record, f"row {i + 1}", self._lenient, extra_allowed=True))
        return out

    def coerce_record(self, record: dict[str, Any], where: str) -> list[Any]:
        """One named record, converted as /invocations does (extra columns ignored)."""
        return self._row(record, where, self._lenient, extra_allowed=True)

def _csv_value(text: str) -> Any:
    return None if text == "" else text


def _parquet_value(value: Any) -> Any:
    """A Parquet cell as the JSON formats would give it: NaN in a float column is a missing value
    (pandas writes missing floats so)."""
    if type(value) is float and value != value:
        return None
    return value


def _check_batch_size(field: str, n: int, max_batch: int) -> None:
    if n == 0:
        raise InputProblem(field, "the batch is empty; send at least one row", schema=True)
    if n > max_batch:
        raise InputProblem(field, f"{n} rows is over the limit of {max_batch} per request (DRIFTWATCH_MAX_BATCH); "
                                  "split the batch", status=413)
