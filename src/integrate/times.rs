//! Output times of a run: a list in memory, or a uniform grid computed on demand (constant
//! memory however long the run).

/// The sorted output times a driver reports states at, read in order (`get(k)` for
/// `k = 0, 1, …`). Cheap to copy.
///
/// [`Times::Uniform`] computes `start + k·step` when asked — bit for bit the value of the list
/// `(0..len).map(|k| start + k as f64 * step)` — so a run of 10^10 outputs needs no 80 GB list.
/// Functions taking output times accept `&[f64]`, `&Vec<f64>`, `&[f64; N]` or a `Times`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Times<'a> {
    /// Times given one by one.
    List(&'a [f64]),
    /// `start + (first + k)·step` for `k < len`.
    Uniform {
        start: f64,
        step: f64,
        /// Index of the first time in the grid (a grid with its first `first` times skipped).
        first: usize,
        len: usize,
    },
}

impl<'a> Times<'a> {
    /// The `len` times `start + k·step`, `k = 0 … len − 1`.
    pub fn uniform(start: f64, step: f64, len: usize) -> Times<'static> {
        Times::Uniform {
            start,
            step,
            first: 0,
            len,
        }
    }
    /// Number of output times.
    pub fn len(&self) -> usize {
        match self {
            Times::List(v) => v.len(),
            Times::Uniform { len, .. } => *len,
        }
    }
    /// `true` if there is no output time.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Output time `k` (`k < len()`; panics otherwise, as indexing does).
    pub fn get(&self, k: usize) -> f64 {
        match self {
            Times::List(v) => v[k],
            Times::Uniform {
                start,
                step,
                first,
                len,
            } => {
                assert!(k < *len, "output time {k} of {len}");
                start + (first + k) as f64 * step
            }
        }
    }
    /// The last output time, if any.
    pub fn last(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.get(self.len() - 1))
    }
    /// The times from index `n` on (all of them after the first `n`).
    pub fn skip(&self, n: usize) -> Times<'a> {
        match *self {
            Times::List(v) => Times::List(&v[n.min(v.len())..]),
            Times::Uniform {
                start,
                step,
                first,
                len,
            } => Times::Uniform {
                start,
                step,
                first: first + n.min(len),
                len: len - n.min(len),
            },
        }
    }
    /// The times in order.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len()).map(|k| self.get(k))
    }
}

impl<'a> From<&'a [f64]> for Times<'a> {
    fn from(v: &'a [f64]) -> Self {
        Times::List(v)
    }
}

impl<'a> From<&'a Vec<f64>> for Times<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        Times::List(v)
    }
}

impl<'a, const N: usize> From<&'a [f64; N]> for Times<'a> {
    fn from(v: &'a [f64; N]) -> Self {
        Times::List(v)
    }
}

#[cfg(test)]
mod tests {
    use super::Times;

    #[test]
    fn a_uniform_grid_is_the_list_it_stands_for() {
        let (start, step, n) = (0.3, 0.01, 1000);
        let list: Vec<f64> = (0..n).map(|k| start + k as f64 * step).collect();
        let grid = Times::uniform(start, step, n);
        assert_eq!(grid.len(), n);
        assert!(grid.iter().eq(list.iter().copied()));
        let (a, b) = (grid.skip(250), Times::from(&list).skip(250));
        assert_eq!(a.len(), 750);
        assert!(a.iter().eq(b.iter()));
        assert_eq!(a.last(), list.last().copied());
        assert!(grid.skip(2000).is_empty());
        assert_eq!(Times::uniform(0.0, 1.0, 0).last(), None);
    }
}
