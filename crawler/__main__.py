from crawler.commands import main

main()
