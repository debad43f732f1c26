"""Trends: seasonal forecasts of daily KPI series, and days that fall outside the forecast interval.

A statsmodels ETS model (additive damped trend, weekly seasonality) is fitted to the series; its
one-step-ahead prediction intervals flag unusual days, and it forecasts ``horizon`` days ahead. A
series shorter than two weeks gets a non-seasonal model; one shorter than ``min_points``, no model.
ARIMA (``method="arima"``) is the alternative.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

SEASON = 7  # days


def forecast_series(
    series: pd.Series,
    *,
    horizon: int = 14,
    alpha: float = 0.05,
    method: str = "ets",
    min_points: int = 10,
) -> pd.DataFrame:
    """Fit and forecast a daily series (index of dates, missing days filled with 0 for counts).

    Returns one row per day (history then forecast): ``actual`` (NaN in the forecast), ``fitted``
    (one-step-ahead prediction, then the forecast), ``lower``/``upper`` (the ``1 - alpha`` interval)
    and ``outside`` (actual outside the interval). No rows with a model when the series is too short:
    then ``fitted``, ``lower``, ``upper`` are NaN and ``outside`` False.
    """
    if method not in ("ets", "arima"):
        raise ValueError(f"forecast method must be 'ets' or 'arima', not {method!r}")
    y = series.astype(float).copy()
    y.index = pd.DatetimeIndex(pd.to_datetime(y.index))
    y = y.asfreq("D")
    future = pd.date_range(y.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D") if len(y) else []
    out = pd.DataFrame(index=y.index.append(pd.DatetimeIndex(future)))
    out["actual"] = y
    out["fitted"] = out["lower"] = out["upper"] = np.nan
    finite = y.dropna()
    if len(finite) < min_points or finite.nunique() < 2:
        out["outside"] = False
        return out
    y = y.interpolate(limit_direction="both")  # gaps in a ratio series (days without sessions)
    # One BLAS thread: these are tiny problems, and oversubscribed threads made a fit 10x slower.
    with warnings.catch_warnings(record=True), threadpool_limits(1):
        warnings.simplefilter("ignore")  # convergence chatter on short or flat series
        frame = _ets(y, horizon, alpha) if method == "ets" else _arima(y, horizon, alpha)
    out[["fitted", "lower", "upper"]] = frame.to_numpy()
    out["outside"] = (out["actual"] < out["lower"]) | (out["actual"] > out["upper"])
    return out


def _ets(y: pd.Series, horizon: int, alpha: float) -> pd.DataFrame:
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonal = "add" if len(y) >= 2 * SEASON + 2 else None
    model = ETSModel(
        y,
        error="add",
        trend="add",
        damped_trend=True,
        seasonal=seasonal,
        seasonal_periods=SEASON if seasonal else None,
    )
    fit = model.fit(disp=False, maxiter=200)
    pred = fit.get_prediction(start=0, end=len(y) + horizon - 1)
    frame = pred.summary_frame(alpha=alpha)
    return frame[["mean", "pi_lower", "pi_upper"]]


def _arima(y: pd.Series, horizon: int, alpha: float) -> pd.DataFrame:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    seasonal = (1, 0, 1, SEASON) if len(y) >= 3 * SEASON else (0, 0, 0, 0)
    fit = SARIMAX(y, order=(1, 1, 1), seasonal_order=seasonal).fit(disp=False)
    pred = fit.get_prediction(start=1, end=len(y) + horizon - 1)
    frame = pred.summary_frame(alpha=alpha)[["mean", "mean_ci_lower", "mean_ci_upper"]]
    first = pd.DataFrame([[np.nan] * 3], columns=frame.columns)  # no one-step prediction for day 0
    return pd.concat([first, frame], ignore_index=True)


def forecast_kpis(
    series: pd.DataFrame,
    kpis: tuple[str, ...],
    *,
    horizon: int = 14,
    alpha: float = 0.05,
    method: str = "ets",
) -> dict[str, pd.DataFrame]:
    """`forecast_series` for several columns of a daily KPI frame (``period`` column = the day)."""
    if series.empty:
        return {}
    days = pd.to_datetime(series["period"])
    out = {}
    for kpi in kpis:
        if kpi in series.columns:
            values = pd.Series(series[kpi].to_numpy(float), index=days)
            out[kpi] = forecast_series(values, horizon=horizon, alpha=alpha, method=method)
    return out
