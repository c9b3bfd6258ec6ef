//! Attention benches: the materialised algorithm against FlashAttention, causal and not,
//! N = 512 … 8192, H = 8, d = 64, f32 — every compiled-in backend that offers the algorithm.
//!
//! Throughput is in elements = floating-point operations (`4·H·N²·d`, halved when causal).
//! Materialised runs are capped where one iteration would take many seconds (the naive backend
//! above N = 512, the blocked backend's materialised path above N = 4096: 2 GB of scores and
//! ~9 s per call at N = 8192); the attention-scaling command shows those sizes.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use nanotensor::attention::{AttentionDims, Heads, HeadsLayout, HeadsMut};
use nanotensor::{AttentionAlgo, AttentionSpec, Backend, Result, Tensor};
use nanotensor_backends::{with_backend, BackendVisitor};
use nanotensor_benches::backends;

const SIZES: [usize; 5] = [512, 1024, 2048, 4096, 8192];
const HEADS: usize = 8;
const HEAD_DIM: usize = 64;

struct Bench<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    n: usize,
    causal: bool,
    qkv: &'a [Tensor<f32>; 3],
}

impl BackendVisitor for Bench<'_, '_> {
    type Output = ();
    fn visit<B: Backend>(self, backend: B) -> Result<()> {
        let l = HeadsLayout::contiguous(HEADS, self.n, HEAD_DIM);
        let len = HEADS * self.n * HEAD_DIM;
        let dims = AttentionDims::validate((&l, len), (&l, len), (&l, len), (&l, len))?;
        let mut out = vec![0.0f32; len];
        for algo in [AttentionAlgo::Materialized, AttentionAlgo::Flash] {
            let cap = match (backend.name(), algo) {
                ("naive", _) => 512,
                (_, AttentionAlgo::Materialized) => 4096,
                _ => usize::MAX,
            };
            let spec = AttentionSpec {
                causal: self.causal,
                algo,
                ..AttentionSpec::default()
            };
            if self.n > cap || backend.attention_plan::<f32>(&dims, &spec).is_err() {
                continue;
            }
            let id = BenchmarkId::new(
                format!("{}-{}-t{}", backend.name(), algo.name(), backend.threads()),
                self.n,
            );
            let [q, k, v] = self.qkv;
            self.group.bench_function(id, |bench| {
                bench.iter(|| {
                    black_box(
                        backend
                            .attention_into(
                                heads(q, l),
                                heads(k, l),
                                heads(v, l),
                                HeadsMut {
                                    data: &mut out,
                                    layout: l,
                                },
                                &spec,
                            )
                            .unwrap(),
                    )
                })
            });
        }
        Ok(())
    }
}

fn attention(c: &mut Criterion) {
    for causal in [false, true] {
        let name = if causal { "causal" } else { "full" };
        let mut group = c.benchmark_group(format!("attention-H{HEADS}-d{HEAD_DIM}-{name}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(3));
        for n in SIZES {
            let l = HeadsLayout::contiguous(HEADS, n, HEAD_DIM);
            let len = HEADS * n * HEAD_DIM;
            let dims = AttentionDims::validate((&l, len), (&l, len), (&l, len), (&l, len))
                .expect("valid sizes");
            group.throughput(Throughput::Elements(dims.flops(causal) as u64));
            let qkv = [
                Tensor::<f32>::randn(&[len], 1.0, 1).unwrap(),
                Tensor::<f32>::randn(&[len], 1.0, 2).unwrap(),
                Tensor::<f32>::randn(&[len], 1.0, 3).unwrap(),
            ];
            for (kind, opts) in backends() {
                with_backend(
                    kind,
                    opts,
                    Bench {
                        group: &mut group,
                        n,
                        causal,
                        qkv: &qkv,
                    },
                )
                .unwrap();
            }
        }
        group.finish();
    }
}

criterion_group!(benches, attention);
criterion_main!(benches);

fn heads(t: &Tensor<f32>, layout: HeadsLayout) -> Heads<'_, f32> {
    Heads {
        data: t.as_slice(),
        layout,
    }
}
