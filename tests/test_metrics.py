"Tests for `segcount.metrics` against values computed by hand (paper §4.2)."
import math

import numpy as np
import pytest
import torch

from segcount.data import SegcountError
from segcount.metrics import count_metrics, region_error, region_sums

torch.set_num_threads(1)


def test_count_metrics_by_hand():
    # errors e = 1, 2, 6; counts y = 4, 8, 12
    # MAE  = (1 + 2 + 6) / 3                       = 3
    # RMSE = sqrt((1 + 4 + 36) / 3) = sqrt(41/3)    = 3.696846...
    # NAE  = (1/4 + 2/8 + 6/12) / 3 = 1/3           = 0.333333...
    # SRE  = sqrt((1/4 + 4/8 + 36/12) / 3) = sqrt(1.25) = 1.118034...
    m = count_metrics([1, 2, 6], [4, 8, 12])
    assert m['n'] == 3
    assert m['MAE'] == pytest.approx(3.0)
    assert m['RMSE'] == pytest.approx(3.696846, abs=1e-6)
    assert m['NAE'] == pytest.approx(0.333333, abs=1e-6)
    assert m['SRE'] == pytest.approx(1.118034, abs=1e-6)
    assert set(m) == {'n', 'MAE', 'RMSE', 'NAE', 'SRE'} and all(type(m[k]) is float for k in ('MAE', 'RMSE', 'NAE', 'SRE'))


def test_count_metrics_single_and_perfect():
    # one image, y = 50, e = 10: MAE 10, RMSE 10, NAE 10/50 = 0.2, SRE sqrt(100/50) = sqrt(2) = 1.414214
    m = count_metrics([10.0], [50])
    assert (m['MAE'], m['RMSE'], m['NAE']) == pytest.approx((10, 10, 0.2))
    assert m['SRE'] == pytest.approx(1.414214, abs=1e-6)
    assert count_metrics(np.zeros(4), [1, 2, 3, 4]) == dict(n=4, MAE=0.0, RMSE=0.0, NAE=0.0, SRE=0.0)


def test_count_metrics_accepts_tensors():
    m = count_metrics(torch.tensor([3.0, 1.0]), torch.tensor([9, 1]))
    # MAE 2; RMSE sqrt((9+1)/2) = sqrt(5); NAE (3/9 + 1/1)/2 = 2/3; SRE sqrt((9/9 + 1/1)/2) = 1
    assert m['MAE'] == 2 and m['RMSE'] == pytest.approx(math.sqrt(5)) and m['NAE'] == pytest.approx(2 / 3)
    assert m['SRE'] == pytest.approx(1.0)


def test_count_metrics_zero_counts():
    with pytest.raises(SegcountError, match='image 1 has ground-truth count 0'):
        count_metrics([1, 2], [3, 0])
    # skip: MAE/RMSE over both (1.5, sqrt(2.5)); NAE/SRE over the first only: 1/3, sqrt(1/3)
    m = count_metrics([1, 2], [3, 0], zero='skip')
    assert m['n'] == 2 and m['n_nonzero'] == 1
    assert m['MAE'] == 1.5 and m['RMSE'] == pytest.approx(math.sqrt(2.5))
    assert m['NAE'] == pytest.approx(1 / 3) and m['SRE'] == pytest.approx(math.sqrt(1 / 3))
    assert math.isnan(count_metrics([1], [0], zero='skip')['NAE'])


@pytest.mark.parametrize('errors,gts,msg', [
    ([1, 2], [3], '2 errors but 1 ground-truth counts'),
    ([], [], 'no images'),
    ([-1], [3], 'errors must be >= 0'),
    ([1], [-3], 'counts must be >= 0'),
    ([float('nan')], [3], 'finite'),
])
def test_count_metrics_bad_input(errors, gts, msg):
    with pytest.raises(SegcountError, match=msg): count_metrics(errors, gts)


def test_region_error_by_hand():
    # 4x6 map: 1.5 at (row 1, col 1), 0.5 at (2, 2) -> 2.0 inside the left half x in [0, 3);
    # 1.0 at (0, 4) -> outside. True count 3.
    D = np.zeros((4, 6)); D[1, 1] = 1.5; D[2, 2] = 0.5; D[0, 4] = 1.0
    assert region_sums(D, (0, 0, 3, 4)) == (2.0, 1.0)
    assert region_error(3, D, (0, 0, 3, 4)) == 2.0          # |3 - 2| + 1
    assert region_error(3, D) == 0.0                         # no region: |3 - 3|
    assert region_error(5, D) == 2.0
    # right half holds the target: y_in = 1, y_out = 2 -> |3 - 1| + 2 = 4
    assert region_error(3, D, (3, 0, 6, 4)) == 4.0


def test_region_error_fractional_and_shapes():
    D = np.zeros((4, 6)); D[1, 1] = 1.5; D[2, 2] = 0.5; D[0, 4] = 1.0
    # region x in [0, 2.5]: half of column 2 inside -> y_in = 1.5 + 0.25, y_out = 0.25 + 1
    assert region_sums(D, (0, 0, 2.5, 4)) == pytest.approx((1.75, 1.25))
    # region y in [1.5, 4]: half of row 1 -> y_in = 0.75 + 0.5
    assert region_sums(D, (0, 1.5, 6, 4)) == pytest.approx((1.25, 1.75))
    # a region larger than the map counts everything inside
    assert region_sums(D, (-5, -5, 50, 50)) == pytest.approx((3.0, 0.0))
    t = torch.tensor(D, dtype=torch.float32)
    for shaped in (t, t[None], t[None, None]):
        assert region_error(3, shaped, (0, 0, 3, 4)) == pytest.approx(2.0)
    with pytest.raises(SegcountError, match='is empty'): region_error(3, D, (3, 0, 3, 4))
    with pytest.raises(ValueError, match='density must be HxW'): region_error(3, np.zeros((2, 3, 4)))


def test_region_error_with_real_density():
    "A density made from dots scores 0 when all dots are inside the region and every dot outside costs 1."
    from segcount.data import density_from_points
    left = [[10, 10], [20, 30], [40, 20]]
    d = density_from_points(left, (100, 40), sigma=2.0)
    assert region_error(3, d, (0, 0, 50, 40)) == pytest.approx(0.0, abs=1e-3)
    d2 = density_from_points(left + [[80, 20], [90, 10]], (100, 40), sigma=2.0)
    assert region_error(3, d2, (0, 0, 50, 40)) == pytest.approx(2.0, abs=1e-3)
    assert region_error(3, d2) == pytest.approx(2.0, abs=1e-3)


def test_region_error_nan_region_means_whole_image():
    "`collate_counting` marks a missing region with NaNs; region_error treats it as no region."
    D = np.zeros((4, 6)); D[1, 1] = 1.5; D[0, 4] = 1.0
    assert region_error(3, D, torch.full((4,), float('nan'))) == pytest.approx(0.5)    # |3 - 2.5|
    assert region_error(3, D, [float('nan')] * 4) == pytest.approx(0.5)
