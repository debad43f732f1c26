"""The widget of /sdk/fusionrec.js on the demo shop page, in real headless Chromium, against a
running service: the strip renders, a click on a recommended item is stored with its exposure id
and counted in the dashboard's CTR.

The shop page is served from its own origin (another port), as a shop's pages are: the widget then
reads cross-origin (public_read) and posts its events with the publishable key through a CORS
preflight, from the one origin in cors_origins. With FUSIONREC_SCREENSHOTS=DIR the pages are saved
as DIR/widget-home.png and DIR/widget-product.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from headless import chromium, console_errors, screenshot, served, wait_for
from serving.conftest import make_settings

pytestmark = pytest.mark.browser

PAGE_KEY = "pk_page_0123456789ab"
ADMIN_KEY = "sk_admin_0123456789ab"
READY = "return document.querySelector('#recs[data-state=ready], #recs[data-state=error]') !== null"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


def strip(driver) -> list[dict[str, str]]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#recs .fusionrec-link')).map(function (a) {"
        " return {item: a.getAttribute('data-item-id'), href: a.href,"
        " name: a.querySelector('.fusionrec-name').textContent,"
        " price: (a.querySelector('.fusionrec-price') || {}).textContent || ''}; });"
    )


def test_a_click_in_the_widget_is_stored_with_its_exposure_and_counted_in_the_ctr(
    browser, store_url: str, models_dir: Path, known_user: str, shop
) -> None:
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from fusionrec.serving.app import create_app
    from fusionrec.serving.routes.web import asset

    titles = {row["item_id"]: row["title"] for row in shop[1].to_pylist()}
    shop_port = free_port()
    shop_origin = f"http://127.0.0.1:{shop_port}"
    keys = {PAGE_KEY: ["events"], ADMIN_KEY: ["admin"]}
    settings = make_settings(
        store_url,
        models_dir,
        api_keys=keys,
        cors_origins=[shop_origin],
        public_read=True,
        exposure_flush_s=0.2,
    )
    api_app = create_app(settings)
    shop_app = FastAPI()
    shop_app.get("/")(lambda: HTMLResponse(asset("demo-shop.html")))  # the shop's own web server

    with served(api_app) as api, served(shop_app, port=shop_port) as shop_url:
        browser.get(f"{shop_url}/?api={api}&key={PAGE_KEY}&user={known_user}&currency=EUR")
        wait_for(browser, READY)
        home = strip(browser)
        exposure = browser.execute_script(
            "return document.getElementById('recs').getAttribute('data-exposure-id')"
        )
        assert len(home) == 6 and exposure, (home, browser.get_log("browser"))
        assert all(
            entry["name"] == titles[entry["item"]] for entry in home
        )  # fields=title from the catalogue
        assert all("€" in entry["price"] for entry in home)  # fields=price, in the page's currency
        assert all(f"fr_exposure={exposure}" in entry["href"] for entry in home)
        screenshot(browser, "widget-home.png", whole_page=False)

        clicked = home[1]["item"]
        browser.execute_script("document.querySelectorAll('#recs .fusionrec-link')[1].scrollIntoView()")
        browser.find_elements("css selector", "#recs .fusionrec-link")[1].click()
        wait_for(browser, "return !document.getElementById('product').hidden && " + READY[7:])
        assert browser.find_element("id", "product-title").text == titles[clicked]
        browser.find_element("id", "add-to-cart").click()
        wait_for(browser, "return document.getElementById('cart-status').textContent === 'Added to cart'")
        screenshot(browser, "widget-product.png", whole_page=False)
        assert console_errors(browser) == []

        service = api_app.state.service
        linked = service.on_writer(
            lambda: service.store.query_arrow(
                "SELECT e.event_type, e.item_id, e.user_id FROM events e JOIN exposure_events l "
                "ON l.event_id = e.event_id WHERE l.exposure_id = :x ORDER BY e.event_type",
                {"x": exposure},
            ).to_pylist()
        )
        assert linked == [
            {"event_type": kind, "item_id": clicked, "user_id": known_user}
            for kind in ("add_to_cart", "click", "view")
        ]

        service.flush_exposures()
        answer = httpx.get(f"{api}/dashboard/api/data", headers={"X-API-Key": ADMIN_KEY}, timeout=120)
        assert answer.status_code == 200
        ctr = answer.json()["exposures"]
        home_rows = [i for i, placement in enumerate(ctr["placement"]) if placement == "home"]
        assert sum(ctr["clicked_exposures"][i] for i in home_rows) == 1
        assert sum(ctr["carts"][i] for i in home_rows) == 1
