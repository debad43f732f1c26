"""A shop's own files through the real `fusionrec ingest`: column maps for events, items and users,
``[ingest]`` and ``[event_aliases]`` of fusionrec.toml, semicolon CSVs with decimal commas and local
dates, the quarantine grouped by reason with warnings and ``--strict``, and `fusionrec quarantine`.

Each quirk is a real file in ``tmp_path`` ingested into a real store (DuckDB, and PostgreSQL where
the store matters); the assertions read the stored rows back.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.store import open_store

runner = CliRunner()

ORDERS_MAP = "Kunde=user_id,Artikel=item_id,Ereignis=event_type,Zeit=timestamp,Preis=price"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs where its own fusionrec.toml (if any) is the project file."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def ingest(*args: str) -> object:
    return runner.invoke(app, ["ingest", *args])


def json_after(output: str) -> dict:
    """The JSON object a command wrote to stdout after its tables."""
    return json.loads(output[output.index('{\n  "') :])


def stored_events(url: str) -> list[dict]:
    with open_store(url, create=False) as store:
        return sorted(store.events_arrow().to_pylist(), key=lambda r: (r["timestamp"], r["item_id"]))


def stored_items(url: str) -> dict[str, dict]:
    with open_store(url, create=False) as store:
        return {row["item_id"]: row for row in store.items_arrow().to_pylist()}


# --- 1. column maps --------------------------------------------------------------------------


def test_a_catalogue_with_its_own_column_names_fails_in_one_line_then_maps(
    tmp_path: Path, store_url: str
) -> None:
    events = write(
        tmp_path / "events.csv", "user_id,item_id,event_type,timestamp\nu1,A-1,view,2026-10-01T10:00:00Z\n"
    )
    catalogue = write(
        tmp_path / "catalogue.csv",
        "sku,title,category,price\nA-1,Green tea,Food > Tea,4.5\nA-2,Black tea,Food > Tea,3.25\n",
    )
    unmapped = ingest(str(events), "--items", str(catalogue), "--store", store_url)
    assert unmapped.exit_code == 2
    assert "missing column(s) item_id; found: sku, title, category, price" in unmapped.output
    assert "row_number" not in unmapped.output and "Traceback" not in unmapped.output

    mapped = ingest(
        str(events), "--items", str(catalogue), "--items-map", "sku=item_id", "--store", store_url
    )
    assert mapped.exit_code == 0, mapped.output
    items = stored_items(store_url)
    assert items["A-1"]["title"] == "Green tea" and items["A-2"]["price"] == 3.25
    assert items["A-1"]["category"] == "Food > Tea"
    assert [e["item_id"] for e in stored_events(store_url)] == ["A-1"]


def test_users_map_and_the_ingest_section_map_all_three_files(tmp_path: Path) -> None:
    write(
        tmp_path / "fusionrec.toml",
        """
[ingest]
map = { customer = "user_id", product = "item_id", action = "event_type", at = "timestamp" }
items_map = { sku = "item_id", name = "title" }
users_map = { customer = "user_id", segment = "attributes" }
""",
    )
    events = write(
        tmp_path / "events.csv", "customer,product,action,at\nc1,p1,purchase,2026-10-01T10:00:00Z\n"
    )
    items = write(tmp_path / "products.csv", "sku,name\np1,Mug\n")
    users = write(tmp_path / "customers.csv", 'customer,segment\nc1,"{""tier"": ""gold""}"\n')
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    result = ingest(str(events), "--items", str(items), "--users", str(users), "--store", url)
    assert result.exit_code == 0, result.output
    assert [(e["user_id"], e["item_id"], e["event_type"]) for e in stored_events(url)] == [
        ("c1", "p1", "purchase")
    ]
    assert stored_items(url)["p1"]["title"] == "Mug"
    with open_store(url, create=False) as store:
        assert json.loads(store.users_arrow().to_pylist()[0]["attributes"]) == {"tier": "gold"}

    # An option on the command line wins over the file's map.
    renamed = write(tmp_path / "events2.csv", "buyer,product,action,at\nc2,p1,view,2026-10-02T10:00:00Z\n")
    again = ingest(
        str(renamed), "--map", "buyer=user_id,product=item_id,action=event_type,at=timestamp", "--store", url
    )
    assert again.exit_code == 0, again.output
    assert {e["user_id"] for e in stored_events(url)} == {"c1", "c2"}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[ingest]\nmapp = {}\n", "ingest.mapp: unknown key"),
        ('[ingest]\ntimezone = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
        ('[ingest]\ndelimiter = "::"\n', "a delimiter is one character"),
        ('[event_aliases]\nbasket = "add_to_kart"\n', "basket = 'add_to_kart': not an event type"),
    ],
)
def test_a_wrong_ingest_or_alias_section_is_one_error_line(tmp_path: Path, toml: str, message: str) -> None:
    write(tmp_path / "fusionrec.toml", toml)
    events = write(tmp_path / "events.csv", "user_id,item_id,event_type,timestamp\nu1,i1,view,2026-10-01\n")
    result = ingest(str(events), "--store", f"duckdb:///{tmp_path / 's.duckdb'}")
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert result.output.count("error:") == 1


# --- 2. event aliases: files, HTTP, stream ---------------------------------------------------

BASKET_EVENTS = """
user_id,item_id,event_type,timestamp
u1,i1,view,2026-10-01T10:00:00Z
u1,i1,basket,2026-10-01T10:01:00Z
u2,i2,Basket,2026-10-01T10:02:00Z
u2,i2,purchase,2026-10-01T10:03:00Z
"""


def test_event_aliases_map_a_shops_names_in_files(tmp_path: Path, store_url: str) -> None:
    write(tmp_path / "fusionrec.toml", '[event_aliases]\nbasket = "add_to_cart"\n')
    events = write(tmp_path / "events.csv", BASKET_EVENTS)
    result = ingest(str(events), "--store", store_url, "--json", "-")
    assert result.exit_code == 0, result.output
    assert json_after(result.output)["quarantined"] == 0
    assert [e["event_type"] for e in stored_events(store_url)] == [
        "view",
        "add_to_cart",
        "add_to_cart",
        "purchase",
    ]


def test_event_aliases_can_point_at_a_configured_new_type(tmp_path: Path) -> None:
    write(
        tmp_path / "fusionrec.toml",
        '[event_types]\nwishlist_add = 2.5\n\n[event_aliases]\n"Merkliste" = "wishlist_add"\n',
    )
    events = write(
        tmp_path / "events.csv",
        "user_id,item_id,event_type,timestamp\nu1,i1,Merkliste,2026-10-01T10:00:00Z\n",
    )
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = ingest(str(events), "--store", url)
    assert result.exit_code == 0, result.output
    assert [e["event_type"] for e in stored_events(url)] == ["wishlist_add"]


def test_event_aliases_apply_to_http_events(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from fusionrec.serving.app import create_app
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings

    config = write(tmp_path / "fusionrec.toml", '[event_aliases]\nbasket = "add_to_cart"\n')
    url = f"duckdb:///{tmp_path / 'live.duckdb'}"
    settings = load_settings(
        config, store_url=url, models_dir=tmp_path / "models", dev=True, log_exposures=False
    )
    assert settings.event_aliases == {"basket": "add_to_cart"}
    with TestClient(create_app(service=Service(settings))) as client:  # the app closes the service
        event = {
            "user_id": "u1",
            "item_id": "i1",
            "event_type": "basket",
            "timestamp": "2026-10-01T10:00:00Z",
        }
        answer = client.post("/v1/events", json=event)
        assert answer.status_code == 202, answer.text
        assert answer.json()["stored"] == 1
    rows = stored_events(url)
    assert [(r["user_id"], r["event_type"]) for r in rows] == [("u1", "add_to_cart")]


@pytest.mark.redis
def test_event_aliases_apply_to_the_stream_consumer(tmp_path: Path, redis_url: str) -> None:
    import uuid

    import redis

    write(tmp_path / "fusionrec.toml", '[event_aliases]\nbasket = "add_to_cart"\n')
    stream = f"fr-aliases-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    url = f"duckdb:///{tmp_path / 'stream.duckdb'}"
    try:
        event = {
            "user_id": "u1",
            "item_id": "i1",
            "event_type": "basket",
            "timestamp": "2026-10-01T10:00:00Z",
        }
        client.xadd(stream, {"event": json.dumps(event)})
        result = runner.invoke(
            app, ["consume", "--stream", f"{redis_url.rstrip('/')}/{stream}", "--store", url, "--drain"]
        )
        assert result.exit_code == 0, result.output
    finally:
        client.delete(stream)
        client.close()
    assert [e["event_type"] for e in stored_events(url)] == ["add_to_cart"]


# --- 3. delimiter, decimal mark, timestamp format and zone -----------------------------------

SEMICOLON_ORDERS = """
Kunde;Artikel;Ereignis;Zeit;Preis
k1;A-1;view;01.10.2026 19:19;
k1;A-1;purchase;01.10.2026 19:25;12,50
k2;A-2;purchase;02.10.2026 08:00;3,99
"""


def test_semicolon_csv_with_decimal_commas_and_local_dates(tmp_path: Path, store_url: str) -> None:
    orders = write(tmp_path / "orders.csv", SEMICOLON_ORDERS)
    catalogue = write(tmp_path / "katalog.csv", "Artikelnummer;Name;Preis\nA-1;Tee;12,50\nA-2;Tasse;3,99\n")
    options = ["--decimal", ",", "--timestamp-format", "%d.%m.%Y %H:%M", "--timezone", "Europe/Berlin"]
    result = ingest(
        str(orders),
        *(
            "--map",
            ORDERS_MAP,
            "--items",
            str(catalogue),
            "--items-map",
            "Artikelnummer=item_id,Name=title,Preis=price",
        ),
        *options,
        *("--store", store_url, "--json", "-"),
    )
    assert result.exit_code == 0, result.output
    assert json_after(result.output)["quarantined"] == 0
    events = stored_events(store_url)
    # 19:19 in Berlin on 1 October 2026 (summer time, UTC+2) is 17:19 UTC.
    assert events[0]["timestamp"] == datetime(2026, 10, 1, 17, 19, tzinfo=UTC)
    assert [(e["event_type"], e["price"]) for e in events] == [
        ("view", None),
        ("purchase", 12.5),
        ("purchase", 3.99),
    ]
    assert {k: v["price"] for k, v in stored_items(store_url).items()} == {"A-1": 12.5, "A-2": 3.99}


def test_without_the_options_the_semicolon_file_is_still_split_but_dates_are_refused(tmp_path: Path) -> None:
    orders = write(tmp_path / "orders.csv", SEMICOLON_ORDERS)
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = ingest(str(orders), "--map", ORDERS_MAP, "--store", url, "--json", "-")
    report = json_after(result.output)
    assert report["reasons"]["unparseable timestamp"] == 3  # the columns were found: ";" was sniffed
    assert result.exit_code == 1  # every row rejected


def test_ingest_section_holds_the_reading_options(tmp_path: Path) -> None:
    write(
        tmp_path / "fusionrec.toml",
        f"""
[ingest]
map = {{ {", ".join(f'{a} = "{b}"' for a, b in (p.split("=") for p in ORDERS_MAP.split(",")))} }}
delimiter = "semicolon"
decimal = ","
timestamp_format = "%d.%m.%Y %H:%M"
timezone = "Europe/Berlin"
""",
    )
    orders = write(tmp_path / "orders.csv", SEMICOLON_ORDERS)
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = ingest(str(orders), "--store", url)
    assert result.exit_code == 0, result.output
    assert [e["price"] for e in stored_events(url)] == [None, 12.5, 3.99]


def test_a_decimal_comma_value_with_a_point_too_is_quarantined_not_misread(tmp_path: Path) -> None:
    orders = write(
        tmp_path / "orders.csv",
        "user_id;item_id;event_type;timestamp;price\nu1;i1;purchase;2026-10-01T10:00:00Z;1.234,50\n"
        "u1;i2;purchase;2026-10-01T10:01:00Z;4,50\n",
    )
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = ingest(str(orders), "--decimal", ",", "--store", url, "--json", "-")
    assert json_after(result.output)["reasons"] == {"price is not a number": 1}
    assert [e["price"] for e in stored_events(url)] == [4.5]


def test_a_bad_reading_option_is_one_error_line(tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", "user_id,item_id,event_type,timestamp\nu1,i1,view,2026-10-01\n")
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    for args, message in (
        (["--decimal", ";"], "decimal"),
        (["--timezone", "Nowhere/City"], "unknown time zone"),
        (["--timestamp-format", "dd.mm.yyyy"], "strftime format"),
    ):
        result = ingest(str(events), *args, "--store", url)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


# --- 4. the quarantine: grouped on the console, warnings, --strict, `fusionrec quarantine` -----


def eighteen_percent_bad(path: Path) -> Path:
    """100 events, 18 of them with the unknown type ``basket`` (a whole type the shop uses)."""
    lines = ["user_id,item_id,event_type,timestamp,price"]
    for i in range(100):
        kind = "basket" if i % 100 < 18 else ("view" if i % 2 else "purchase")
        lines.append(f"u{i % 9},i{i % 13},{kind},2026-10-01T{10 + i % 10:02d}:{i % 60:02d}:00Z,{i % 7}.5")
    return write(path, "\n".join(lines) + "\n")


def test_18_percent_bad_rows_warn_and_group_reasons_with_a_sample(tmp_path: Path) -> None:
    events = eighteen_percent_bad(tmp_path / "events.csv")
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = ingest(str(events), "--store", url, "--json", str(tmp_path / "report.json"))
    assert result.exit_code == 0, result.output
    assert "unknown event_type" in result.output and "events.csv:1" in result.output  # reason, count, sample
    assert "warning: every 'basket' event was rejected (18 rows)" in " ".join(result.output.split())
    assert "[event_aliases]" in result.output and "above the 5% warning share" in result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quarantined"] == 18 and report["refused_event_types"] == ["basket"]
    assert json.loads(report["samples"]["unknown event_type"]["raw"])["event_type"] == "basket"
    assert len(stored_events(url)) == 82


def test_strict_turns_the_warning_into_exit_2(tmp_path: Path) -> None:
    events = eighteen_percent_bad(tmp_path / "events.csv")
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = ingest(str(events), "--store", url, "--strict")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'basket'" in errors[0] and "--strict" in result.output
    # The good rows are kept even so (each batch commits); the re-run after a fix stores the rest.
    assert len(stored_events(url)) == 82

    write(tmp_path / "fusionrec.toml", '[event_aliases]\nbasket = "add_to_cart"\n')
    fixed = ingest(str(events), "--store", url, "--strict", "--json", "-")
    assert fixed.exit_code == 0, fixed.output
    assert json_after(fixed.output)["stored"] == 18
    assert sum(e["event_type"] == "add_to_cart" for e in stored_events(url)) == 18


def test_a_higher_warn_share_and_no_refused_type_stays_quiet(tmp_path: Path) -> None:
    events = write(
        tmp_path / "events.csv",
        "user_id,item_id,event_type,timestamp\nu1,i1,view,2026-10-01T10:00:00Z\nu1,,view,2026-10-01T10:01:00Z\n"
        "u2,i2,view,2026-10-01T10:02:00Z\n",
    )
    result = ingest(
        str(events), "--store", f"duckdb:///{tmp_path / 's.duckdb'}", "--warn-share", "0.5", "--strict"
    )
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and "missing item_id" in result.output


def test_quarantine_command_lists_groups_and_exports(tmp_path: Path, store_url: str) -> None:
    events = eighteen_percent_bad(tmp_path / "events.csv")
    assert ingest(str(events), "--store", store_url).exit_code == 0
    listed = runner.invoke(
        app, ["quarantine", "--store", store_url, "--out", str(tmp_path / "q.csv"), "--json", "-"]
    )
    assert listed.exit_code == 0, listed.output
    groups = json_after(listed.output)
    assert groups["rows"] == 18
    assert [(g["reason"], g["count"]) for g in groups["reasons"]] == [("unknown event_type", 18)]
    assert groups["reasons"][0]["sample"]["row_number"] == 1
    with (tmp_path / "q.csv").open(newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == 18 and {row["reason"] for row in exported} == {"unknown event_type"}
    assert all(json.loads(row["raw"])["event_type"] == "basket" for row in exported)


def test_quarantine_of_a_missing_store_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["quarantine", "--store", f"duckdb:///{tmp_path / 'none.duckdb'}"])
    assert result.exit_code == 2 and "Traceback" not in result.output
