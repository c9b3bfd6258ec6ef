//! Matmul benches: every compiled-in backend and the `matrixmultiply` crate side by side.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use nanotensor::{Backend, Result, Tensor};
use nanotensor_backends::{with_backend, BackendVisitor};
use nanotensor_benches::{backends, runs, MatmulShape, MATMUL_SHAPES};

struct Bench<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    shape: MatmulShape,
    a: &'a Tensor<f32>,
    b: &'a Tensor<f32>,
}

impl BackendVisitor for Bench<'_, '_> {
    type Output = ();
    fn visit<B: Backend>(self, backend: B) -> Result<()> {
        let id = BenchmarkId::new(
            format!("{}-t{}", backend.name(), backend.threads()),
            self.shape.name,
        );
        // One output per benchmark, as `nanotensor matmul` times: the product, not a fresh
        // allocation (and its page faults) per iteration.
        let mut out = Tensor::zeros(&[self.a.shape()[0], self.b.shape()[1]])?;
        if self.shape.prepared {
            let w = backend.prepare(self.b.t()?)?;
            let (x, m) = (self.a.as_slice(), self.a.shape()[0]);
            self.group.bench_function(id, |bench| {
                bench.iter(|| backend.linear_into(x, m, &w, out.as_mut_slice()).unwrap());
                black_box(&out);
            });
        } else {
            self.group.bench_function(id, |bench| {
                bench.iter(|| backend.matmul_into(self.a, self.b, &mut out).unwrap());
                black_box(&out);
            });
        }
        Ok(())
    }
}

fn matmul(c: &mut Criterion) {
    for shape in MATMUL_SHAPES {
        let mut group = c.benchmark_group(format!("matmul/{}", shape.name));
        group.throughput(Throughput::Elements(shape.flops()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        let a = Tensor::<f32>::randn(&[shape.m, shape.k], 1.0, 1).unwrap();
        let b = Tensor::<f32>::randn(&[shape.k, shape.n], 1.0, 2).unwrap();
        for (kind, opts) in backends() {
            if runs(kind, shape) {
                with_backend(
                    kind,
                    opts,
                    Bench {
                        group: &mut group,
                        shape: *shape,
                        a: &a,
                        b: &b,
                    },
                )
                .unwrap();
            }
        }
        // The peer: matrixmultiply's sgemm (single-threaded build), on the same data.
        let mut out = vec![0.0f32; shape.m * shape.n];
        group.bench_function(BenchmarkId::new("matrixmultiply-t1", shape.name), |bench| {
            bench.iter(|| {
                // SAFETY: the pointers cover m·k, k·n and m·n contiguous f32 with the row-major
                // strides passed, and `out` is not aliased.
                unsafe {
                    matrixmultiply::sgemm(
                        shape.m,
                        shape.k,
                        shape.n,
                        1.0,
                        a.as_slice().as_ptr(),
                        shape.k as isize,
                        1,
                        b.as_slice().as_ptr(),
                        shape.n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        shape.n as isize,
                        1,
                    );
                }
                black_box(&out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, matmul);
criterion_main!(benches);
