from ttrd.cli import main

main()
