"""The streaming anomaly detector: one state per metric series, PyOD HBOS on causal features.

How a sample becomes an alert:

1. Its features (engine.detection.features) are built from that sample and earlier ones only.
2. The series' current model (PyOD HBOS, fitted on the previous `train_window` rows and refitted
   every `refit_every` rows, or every `refit_interval` seconds of the series' clock when that is
   set) gives a raw outlier score.
3. The raw score is calibrated against the series' own past scores with the ratio
   r = (s - median) / (q - median), q the 99.9th percentile of the past scores, squashed to [0, 1)
   as r / (1 + r). It is scale-free, so one threshold means the same thing on a flat series and on
   a noisy one: 0.5 is "as unusual as the most unusual 0.1 % of the recent past". HBOS caps what
   one feature can add, so its score counts how many views of the sample are unusual at once;
   many clear anomalies reach that cap and score exactly 0.5.
4. A second, deviation score covers what HBOS's cap hides: a sample further from the same time
   yesterday (now, or over the last 12 rows) than any row of the calibration window, by at least
   `deviation_bar` robust standard deviations (the minimum deviation, at least 4) — a level
   shift on a seasonal series.
5. A third, sustained score: the mean raw score of the last `sustained_rows` rows, calibrated
   against the same mean over the calibration window, counts when it sets a record — a run of
   moderately unusual rows (spikes growing denser) that no single row makes a record.
6. A fourth, weekly score on series sampled every 7.4 min to 6 h: the last 12 rows against the
   median of the same time 1, 2 and 3 weeks earlier, counting as the deviation score does — a
   weekday that looks like a Sunday (a public holiday) on a series with a weekly rhythm.
7. At `high` only, a record-run score (`record_runs`): a run of one repeated value (a stuck
   metric, a counter gone quiet) that becomes longer than every earlier run of the series, at
   least 12 rows long and begun after a history four times its length, reaches the threshold on
   its own, once per run. Runs are followed on every row, fitted or not.
8. The threshold and the minimum deviation (at least `deviating_features` features that many
   robust standard deviations off; one feature at `high`) apply at every sensitivity, except to
   a record run (a run is neither). With `false_positive_filter` on, a candidate must also be
   confirmed (`sensitivity` picks how: `low` wants three rows scoring 0.4 within `confirm_span`,
   `medium` two scoring 0.3, `high` alerts on the first row), must not belong to an episode that
   already alerted (cooldown unless the score escalates; 400 rows at `low`, 150 at `medium`, 50
   at `high`), must not be explained by the series' daily pattern (a record run is not judged by
   it) and must not match a shape a person marked as a false positive on that series.

So `high` is `medium` plus more: the windows a record run finds, paid for with the false alarms
of a shorter cooldown and a one-feature deviation. On NAB that is the trade the low-FN profile
rewards and the standard one does not (bench/nab.py --sensitivity all).

Fits are pure (`FitJob.run`), so they can run in another thread (`fit_inline=False`, then
`pending_fits()` / `install()`); replay, tests and the engine service (which runs the whole
detector in one worker thread) fit inline. Scoring between fits is the same code in both modes.

The package's modules: `streaming` (StreamingDetector: per-series observe, fits, learning API),
`state` (per-series state, results, reason codes), `fitting` (FitJob, FittedModel, calibration,
warm-up) and `alerting` (the threshold and the false-positive filter).

numpy is imported at module level and PyOD inside functions: import this package lazily.
"""

from engine.detection.detector.fitting import FitJob, warm_up
from engine.detection.detector.state import REASON_NAMES, Batch, Observation
from engine.detection.detector.streaming import StreamingDetector
from engine.detection.settings import SENSITIVITIES, DetectorSettings

__all__ = ["REASON_NAMES", "SENSITIVITIES", "Batch", "DetectorSettings", "FitJob", "Observation", "StreamingDetector", "warm_up"]
