from s3mpu.cli import main

main()
