"""Read canonical CSV, Parquet and JSON-lines files in fixed-size batches, in bounded memory.

Every batch carries ``row_number``: the 1-based position of the row among the file's data rows
(the CSV header is not counted), so a rejected row can be found in the source.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fusionrec.data.validate import ID_FIELDS, IngestError

_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


def file_kind(path: Path) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name (a ``.gz`` suffix is looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".zstd"):
        suffixes = suffixes[:-1]
    kind = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if kind is None:
        raise IngestError(f"{path}: unknown file type (expected .csv, .tsv, .parquet, .jsonl/.ndjson/.json)")
    return kind


def count_rows(path: Path) -> int | None:
    """Rows in the file when known without reading it (Parquet metadata), else None."""
    return pq.ParquetFile(path).metadata.num_rows if file_kind(path) == "parquet" else None


def _rebatch(batches: Iterable[pa.RecordBatch | pa.Table], size: int) -> Iterator[pa.Table]:
    """Regroup a stream of Arrow batches into tables of exactly ``size`` rows (the last may be short)."""
    pending: list[pa.Table] = []
    held = 0
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        pending.append(table)
        held += table.num_rows
        while held >= size:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, size)
            rest = merged.slice(size)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows
    if held:
        yield pa.concat_tables(pending)


SNIFFED_DELIMITERS = ",;\t|"


def _first_line(path: Path) -> str:
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
        return handle.readline()


def _csv_header(path: Path, delimiter: str) -> list[str]:
    header = next(csv.reader([_first_line(path)], delimiter=delimiter), None)
    if not header:
        raise IngestError(f"{path}: empty file, no header row")
    return header


def csv_delimiter(path: Path, delimiter: str | None = None) -> str:
    """``delimiter`` when given; else tab for ``.tsv``, else sniffed from the header line.

    Only the header is sniffed: column names hold no decimal commas or quoted text, so the
    separator among ``SNIFFED_DELIMITERS`` that splits it is unambiguous; a one-column header is ",".
    """
    if delimiter is not None:
        return delimiter
    if ".tsv" in [s.lower() for s in path.suffixes]:
        return "\t"
    try:
        return csv.Sniffer().sniff(_first_line(path), delimiters=SNIFFED_DELIMITERS).delimiter
    except csv.Error:  # one column, or nothing to tell from
        return ","


def _csv_batches(path: Path, delimiter: str | None) -> Iterator[pa.RecordBatch]:
    delimiter = csv_delimiter(path, delimiter)
    header = _csv_header(path, delimiter)
    # Every column is read as text and parsed by validation, so one odd value cannot fail the file.
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=True,
        null_values=[""],
    )
    reader = pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        read_options=pacsv.ReadOptions(block_size=1 << 22, encoding="utf8"),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=convert,
    )
    yield from reader


def _parquet_batches(path: Path, size: int) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(path).iter_batches(batch_size=size)


def _jsonl_batches(path: Path, size: int) -> Iterator[pa.Table]:
    # pandas keeps each field's own JSON type (dtype=False); mixed columns stay objects and are
    # normalised by validation, where Arrow's JSON reader would fail on a type change mid-file.
    with pd.read_json(path, lines=True, chunksize=size, dtype=False, precise_float=True) as chunks:
        yield from chunks


def _rename(table: pa.Table, column_map: Mapping[str, str] | None, path: Path) -> pa.Table:
    if not column_map:
        return table
    absent = [source for source in column_map if source not in table.column_names]
    if absent:
        raise IngestError(
            f"{path}: column_map names column(s) {', '.join(absent)} not in the file "
            f"(columns: {', '.join(table.column_names)})"
        )
    return table.rename_columns([column_map.get(name, name) for name in table.column_names])


def iter_arrow_batches(
    path: str | Path,
    *,
    column_map: Mapping[str, str] | None = None,
    batch_rows: int = 200_000,
    delimiter: str | None = None,
) -> Iterator[pa.Table]:
    """Arrow tables of ``batch_rows`` rows (plus ``row_number``) from a CSV, Parquet or JSONL file.

    ``delimiter`` separates CSV fields (None: see `csv_delimiter`); other kinds ignore it.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    kind = file_kind(path)
    if kind == "csv":
        source: Iterable[pa.RecordBatch | pa.Table] = _csv_batches(path, delimiter)
    elif kind == "parquet":
        source = _parquet_batches(path, batch_rows)
    else:
        source = (_frame_to_arrow(frame, column_map) for frame in _jsonl_batches(path, batch_rows))
    first_row = 1
    try:
        for table in _rebatch(source, batch_rows):
            table = _rename(table, column_map, path)
            if "row_number" in table.column_names:
                table = table.drop_columns(["row_number"])
            numbers = pa.array(range(first_row, first_row + table.num_rows), pa.int64())
            first_row += table.num_rows
            yield table.append_column("row_number", numbers)
    except (pa.ArrowInvalid, ValueError, UnicodeDecodeError) as err:
        if isinstance(err, IngestError):
            raise
        raise IngestError(f"{path}: cannot read near data row {first_row}: {err}") from err


def _frame_to_arrow(frame: pd.DataFrame, column_map: Mapping[str, str] | None) -> pa.Table:
    """A JSON chunk as Arrow; columns of mixed Python types become text, and the id fields given
    as another JSON type than a string are listed per row (by their canonical names, which
    ``column_map`` gives after this) for validation to refuse."""
    from fusionrec.data.columns import JSON_TYPES, json_type_faults, to_arrow

    renamed = frame.rename(columns=dict(column_map or {}))
    table = pa.table({str(name): to_arrow(frame[name]) for name in frame.columns})
    return table.append_column(JSON_TYPES, json_type_faults(renamed, ID_FIELDS))


def iter_canonical_batches(
    path: str | Path, *, column_map: Mapping[str, str] | None = None, batch_rows: int = 200_000
) -> Iterator[pd.DataFrame]:
    """pandas DataFrames of ``batch_rows`` rows with a ``row_number`` column, read in bounded memory."""
    for table in iter_arrow_batches(path, column_map=column_map, batch_rows=batch_rows):
        yield table.to_pandas()
