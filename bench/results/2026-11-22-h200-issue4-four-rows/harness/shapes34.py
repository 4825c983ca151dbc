import bench_matmul
bench_matmul.SHAPES_ROWS = (3, 4)
bench_matmul.main()
